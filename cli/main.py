"""`derivs`: manual fetches of current open interest and funding (FR-009, user story 1).

    derivs oi BTC ETH                      # all three venues, readable table
    derivs oi BTCUSDT-PERP -v binance --json
    derivs funding --sandbox               # against the built-in emulated venues

Symbols may be given as the base coin (BTC), the venue's id (BTCUSDT), the ccxt symbol
(BTC/USDT:USDT) or the Nautilus instrument id (BTCUSDT-PERP.BINANCE). Exit status is 0 only if
every venue and symbol answered.
"""

import asyncio
import importlib
import sys
from typing import TYPE_CHECKING

import click
import msgspec

from actors.topology import VENUE_NAMES
from cli.output import json_line, render_table
from cli.pipes import guard_stdout
from cli.sandbox import emulator_urls
from messages.events import FundingRate, OpenInterest
from messages.funding import figures
from messages.timeunits import utc as _when

if TYPE_CHECKING:
    from cli.fetch import FetchResult

DEFAULT_SYMBOLS = ("BTC", "ETH")




def _oi_rows(rows: list[OpenInterest]) -> tuple[list[str], list[list[str]]]:
    headers = ["venue", "instrument", "open interest (base)", "value (USD)", "time (UTC)"]
    return headers, [[r.venue, r.instrument_id, f"{r.open_interest:,.4f}", f"{r.open_interest_value:,.0f}", _when(r.ts_event)] for r in rows]


def _funding_rows(rows: list[FundingRate]) -> tuple[list[str], list[list[str]]]:
    # the raw rate per its own interval, then the same in common units (messages/funding.py)
    headers = ["venue", "instrument", "rate", "interval", "per 8h", "annualized", "next funding (UTC)", "predicted",
               "predicted ann.", "mark price"]
    pct = lambda x, digits=4: "-" if x is None else f"{x * 100:+.{digits}f}%"  # noqa: E731
    out = []
    for r in rows:
        f = figures(r.rate, r.interval_minutes, r.predicted_rate)
        out.append([r.venue, r.instrument_id, pct(r.rate),
                    f"{r.interval_minutes // 60}h" if r.interval_minutes % 60 == 0 else f"{r.interval_minutes}m",
                    pct(f["rate_8h"]), pct(f["rate_annualized"], 2), _when(r.next_funding_ns), pct(r.predicted_rate),
                    pct(f["predicted_rate_annualized"], 2), "-" if r.mark_price is None else f"{r.mark_price:,.2f}"])
    return headers, out


def _json_row(row: OpenInterest | FundingRate) -> dict:
    """A row as JSON: its fields, and for funding the annualized and 8-hour figures beside the rate."""
    out = msgspec.to_builtins(row)
    if isinstance(row, FundingRate):
        out.update(figures(row.rate, row.interval_minutes, row.predicted_rate))
    return out


def _report(result: "FetchResult", as_json: bool, kind: str, hint: str | None = None) -> None:
    if as_json:  # JSON lines (cli/output.py); errors on stderr as below
        for row in map(_json_row, result.rows):
            click.echo(json_line(row["kind"], row))
    elif result.rows:
        headers, rows = (_oi_rows if kind == "open_interest" else _funding_rows)(result.rows)
        click.echo(render_table(headers, rows))
    for venue, message in result.errors:
        click.echo(f"error: {venue}: {message}", err=True)
    if hint:
        click.echo(hint, err=True)
    if result.errors:
        sys.exit(1)


def _common(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)
    f = click.option("--emulator", "emulator_file", type=click.Path(dir_okay=False), help="JSON file {venue: url} of a running emulator (e.g. run/emulator.json of a sandbox mesh).")(f)
    f = click.option("--sandbox", is_flag=True, help="Use the built-in emulated venues instead of the real ones.")(f)
    f = click.option("-v", "--venue", "venues", multiple=True, type=click.Choice(VENUE_NAMES), help="Venue to ask (repeatable; default: all).")(f)
    f = click.argument("symbols", nargs=-1)(f)
    return f


def _run(kind: str, symbols, venues, sandbox, emulator_file, as_json) -> None:
    venues = list(venues or VENUE_NAMES)
    from cli.fetch import fetch_current  # ccxt: imported by the commands that call a venue

    with emulator_urls(sandbox, emulator_file, venues) as urls:
        result = asyncio.run(fetch_current(kind, venues, symbols or DEFAULT_SYMBOLS, urls))
    _report(result, as_json, kind, _no_venue_hint(result, sandbox, emulator_file))


def _no_venue_hint(result: "FetchResult", sandbox: bool, emulator_file: str | None) -> str | None:
    """No venue answered at all: most likely no network (or no emulator); say what to try."""
    if result.rows or not result.errors or not all(m.startswith("venue unreachable") for _, m in result.errors):
        return None
    if emulator_file:
        return (f"hint: no venue answers at the URLs of {emulator_file}: is that emulator running? "
                "`--sandbox` starts a built-in one instead")
    if not sandbox:
        return "hint: no venue can be reached (no network to the exchanges?); `--sandbox` asks the built-in emulated venues"
    return None


class _LazyGroup(click.Group):
    """Commands of their own modules are imported when run (or listed by --help): reading the
    catalog (`derivs query`) does not wait seconds for ccxt to import."""

    LAZY = {
        "history": "cli.history:history",  # derivs history oi|funding
        "coverage": "cli.coverage:coverage_cmd",  # derivs coverage
        "compact": "cli.compact:compact_cmd",  # derivs compact (closed periods into month/day files)
        "query": "cli.query:query_cmd",  # derivs query oi|funding|liquidations|gaps
        "summary": "cli.summary:summary_cmd",  # derivs summary SYMBOL
        "plot": "cli.plot:plot_cmd",  # derivs plot oi|funding|liquidations SYMBOL --out FILE
        "liquidations": "cli.liquidations:liquidations",  # derivs liquidations (streaming)
        "deadletters": "cli.deadletters:deadletters",  # derivs deadletters (refused events)
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            module, attr = self.LAZY[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup)
def cli() -> None:
    """Derivative market data from Binance USDT-M, Bybit linear and Hyperliquid."""
    guard_stdout()  # `derivs ... | head` ends quietly (cli/pipes.py)


@cli.command("oi")
@_common
def oi(symbols, venues, sandbox, emulator_file, as_json) -> None:
    """Current open interest (base units and USD) for SYMBOLS (default: BTC ETH)."""
    _run("open_interest", symbols, venues, sandbox, emulator_file, as_json)


@cli.command("funding")
@_common
def funding(symbols, venues, sandbox, emulator_file, as_json) -> None:
    """Current funding rate, interval, next funding time and predicted rate for SYMBOLS."""
    _run("funding", symbols, venues, sandbox, emulator_file, as_json)



if __name__ == "__main__":
    cli()
