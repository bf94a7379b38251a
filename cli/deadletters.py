"""`derivs deadletters`: what the validator refused, with the reason (the dead-letter file).

    derivs deadletters                          # ./topology.yaml's run/deadletter.jsonl, a table
    derivs deadletters --reason NaN --json      # only reasons containing "NaN", JSON lines (kind "dead_letter")
    derivs deadletters --topology T --source collector.bybit

Every refused event keeps its (source, epoch, seq), so no seq of a collector goes missing
unexplained: it is either stored or listed here.
"""

import json
from collections import Counter
from pathlib import Path

import click

from actors.topology import TopologyError, load_topology
from cli.output import echo_json_lines


def read_dead_letters(path: Path) -> list[dict]:
    """The dead letters in `path`, oldest first ([] if there are none)."""
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@click.command()
@click.option("--topology", "topology_path", default="topology.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="The mesh whose run directory holds the dead letters.")
@click.option("--reason", default=None, help="Only reasons containing this text (case-insensitive).")
@click.option("--source", default=None, help="Only this source, e.g. collector.bybit.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, with the refused payload.")
def deadletters(topology_path: str, reason: str | None, source: str | None, as_json: bool) -> None:
    """List the events the validator refused, and why."""
    try:
        topo, _ = load_topology(topology_path)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from None
    if not Path(topo.run_dir).is_dir():
        raise click.ClickException(f"run directory {topo.run_dir} ({topology_path}): no such directory (has this mesh run?)")
    path = Path(topo.run_dir) / "deadletter.jsonl"
    rows = [r for r in read_dead_letters(path)
            if (not reason or reason.lower() in r["reason"].lower()) and (not source or r["source"] == source)]
    if as_json:
        echo_json_lines("dead_letter", rows)
        return
    for r in rows:
        click.echo(f"{r['source']:<22} seq {r['seq']:<8} {r['reason']}")
    by_source = Counter(r["source"] for r in rows)
    click.echo(f"{len(rows)} dead letters in {path}" + (f" ({', '.join(f'{s}: {n}' for s, n in by_source.items())})" if rows else ""),
               err=True)
