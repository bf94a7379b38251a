"""`derivs summary SYMBOL`: open interest, funding, liquidations and gaps of one coin across
venues, from the catalog only (what is computed: `storage/summary.py`).

    derivs summary BTC                      # tables
    derivs summary ETH --json               # JSON lines: summary_oi, summary_funding, summary_liquidations, gap
    derivs summary BTC --at 2026-11-30T12:00
"""

from __future__ import annotations

import dataclasses

import click

from actors.topology import VENUE_NAMES
from storage.query import KINDS, resolve_ids
from storage.summary import HORIZONS, Summary, summarize
from cli.catalogargs import catalog_options, existing_catalog
from cli.coverage import NS, step_text
from cli.output import cell, echo_json_lines, render_table
from cli.timeargs import iso, time_option


@click.command("summary")
@click.argument("symbol")
@click.option("-v", "--venue", "venues", multiple=True, type=click.Choice(VENUE_NAMES), help="Venue (repeatable; default: all).")
@time_option("at", "The instant to summarize (UTC); default now.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (kinds summary_oi, summary_funding, summary_liquidations, gap).")
@catalog_options
def summary_cmd(symbol, venues, at, as_json, catalog, topology) -> None:  # noqa: ANN001
    """Open interest (USD, 1 h / 24 h change), funding (annualized), liquidations (last hour / day,
    long vs short) and recorded gaps of SYMBOL on every venue, from the catalog."""
    root = existing_catalog(catalog, topology)
    if not any(resolve_ids(root, kind, symbol, tuple(venues)) for kind in KINDS):
        raise click.ClickException(f"nothing stored for {symbol!r} in {root} (see `derivs coverage`)")
    s = summarize(root, symbol, at, tuple(venues))
    if as_json:
        echo_json_lines("summary_oi", (line.to_dict() for line in s.open_interest))
        echo_json_lines("summary_funding", s.funding)
        echo_json_lines("summary_liquidations", (dataclasses.asdict(line) for line in s.liquidations))
        echo_json_lines("gap", s.gaps)
        return
    click.echo(text(s))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.2f}%"


def text(s: Summary) -> str:
    """The summary as a user reads it: four titled tables."""
    parts = [f"{s.symbol} as of {iso(s.at_ns)}", "", "Open interest"]
    parts.append(render_table(
        ["venue", "instrument", "as of (UTC)", "OI (base)", "OI (USD)", *(f"{h} change" for h in HORIZONS)],
        [[x.venue, x.instrument_id, iso(x.ts_event), f"{x.open_interest:,.4f}", f"{x.open_interest_value:,.0f}",
          *(_pct(x.change(h)) for h in HORIZONS)] for x in s.open_interest], left=3) if s.open_interest else "  none stored")
    parts += ["", "Funding"]
    parts.append(render_table(
        ["venue", "instrument", "as of (UTC)", "source", "rate", "interval", "per 8h", "annualized",
         "predicted (annualized)", "next funding (UTC)"],
        [[f["venue"], f["instrument_id"], iso(f["ts_event"]), "settled" if f["settled"] else "live", cell("rate", f["rate"]),
          step_text(f["interval_minutes"] * 60 * NS), cell("rate_8h", f["rate_8h"]), cell("rate_annualized", f["rate_annualized"]),
          cell("predicted_rate_annualized", f["predicted_rate_annualized"]), iso(f["next_funding_ns"])] for f in s.funding],
        left=4) if s.funding else "  none stored")
    parts += ["", "Liquidations"]
    parts.append(render_table(
        ["window", "venue", "longs", "longs (USD)", "shorts", "shorts (USD)"],
        [[f"last {x.window}", x.venue, str(x.long_count), f"{x.long_value:,.0f}", str(x.short_count),
          f"{x.short_value:,.0f}"] for x in s.liquidations]))
    parts += ["", f"Gaps in the last 24h: {len(s.gaps)}"]
    parts += [f"  {g['instrument_id']}  {g['stream']}  {iso(g['ts_event'])} .. {iso(g['end_ns'])}  "
              f"({(g['end_ns'] - g['ts_event']) / 1e9:.1f} s)  {g['reason']}" for g in s.gaps]
    return "\n".join(parts)
