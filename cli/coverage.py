"""`derivs coverage`: what the catalog holds per venue / instrument / kind (no venue call).

    derivs coverage                        # ./topology.yaml's catalog (else ./catalog), a table
    derivs coverage --topology T --json    # JSON lines, kind "coverage", holes listed

Per series: stored range, rows, typical step and holes (`storage/coverage.py`); liquidations
report the recorded gaps as their holes (`storage/gaps.py`), which are listed below the table.
"""

from __future__ import annotations

import click

from storage.coverage import coverage as catalog_coverage
from storage.gaps import gap_lines, liquidation_coverage
from cli.catalogargs import catalog_options, existing_catalog
from cli.output import echo_json_lines, render_table
from cli.timeargs import iso
from messages.timeunits import NS



@click.command("coverage")
@catalog_options
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per series (kind \"coverage\", series oi|funding|liquidations).")
def coverage_cmd(catalog: str | None, topology: str | None, as_json: bool) -> None:
    """What the catalog holds per venue / instrument / kind: range, rows, holes (no venue call)."""
    root = existing_catalog(catalog, topology)
    rows = catalog_coverage(root) + liquidation_coverage(root)  # liquidations: the recorded gaps are the holes
    if as_json:
        echo_json_lines("coverage", ({"series": d.pop("kind"), **d} for d in (r.to_dict() for r in rows)))
        return
    if not rows:
        click.echo(f"{root}: no open interest, funding or liquidations stored")
        return
    headers = ["venue", "instrument", "kind", "source", "rows", "first (UTC)", "last (UTC)", "step", "holes"]
    table = [[r.venue, r.instrument_id, r.kind, r.source, str(r.rows), iso(r.first_ns), iso(r.last_ns),
              step_text(r.step_ns), str(len(r.holes))] for r in rows]
    click.echo(render_table(headers, table, left=4))
    for line in gap_lines(root, iso):
        click.echo(line)


def step_text(ns: int) -> str:
    s = ns // NS
    if s and s % 3600 == 0:
        return f"{s // 3600}h"
    if s and s % 60 == 0:
        return f"{s // 60}m"
    return f"{ns / NS:g}s"
