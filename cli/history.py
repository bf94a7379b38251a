"""`derivs history oi|funding`: fetch what the catalog lacks from the venues.

    derivs history oi BTC -v binance --since 2026-11-01 --until 2026-11-20 --period 5m
    derivs history funding BTC ETH --since 2026-10-01 --sandbox --catalog catalog
    derivs history oi BTC ETH --since 30d

`history` fetches only what the catalog lacks (storage/coverage.missing_ranges), pages through the
venue (venues/history) and stores the rows through the writer (cli/handoff.py): when a mesh is
running on the catalog (its writer holds `<catalog>/.writer.lock`) the rows are handed to it over
its ingest endpoint and acknowledged like a collector's; otherwise they are written here with the
writer's own storage code (`CatalogStore.write`). `--topology` (default ./topology.yaml if
present) names the mesh: its catalog is the default `--catalog`. A progress bar shows on a
terminal; a summary per venue and symbol ends the run.

Rows are stored as they arrive, every `CHUNK_ROWS` (oldest first where the venue allows), not
at the end: Ctrl-C keeps everything stored so far, says how much and up to when in one line, and
exits with 130; the same command run again fetches only what is still missing. A start before
the instrument's listing starts at the listing (nothing exists before it).
`derivs coverage` and `derivs query` (cli/coverage.py, cli/query.py) read what it stored.

Times are UTC. `--since` is inclusive, `--until` exclusive (default: now); both take the forms of
`cli/timeargs.py` (dates, datetimes, `now`, `30d` / `12h` before now, epoch milliseconds).
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import aclosing
from dataclasses import dataclass, field

import click

from storage.coverage import holes_in, missing_ranges, neighbours, read_table
from storage.coverage import query as catalog_query
from venues.base import MS, HistoryUnavailable, describe
from venues.history import (
    PERIODS_MS,
    default_funding_interval_ns,
    funding_chunks,
    listing_start,
    oi_history_start,
    oi_periods,
    open_interest_chunks,
)
from actors.topology import VENUE_NAMES
from venues import UnknownSymbol, adapter, oi_history_periods
from storage.paths import directory_problem
from cli.catalogargs import DEFAULT_TOPOLOGY, catalog_and_endpoint
from cli.handoff import Sink
from cli.history_archive import archive_oi
from cli.output import json_line
from cli.sandbox import emulator_urls
from cli.timeargs import time_option
from messages.events import Instrument
from messages.timeunits import NS
from messages.timeunits import utc as _iso

CHUNK_ROWS = 5_000  # rows stored at a time: what a Ctrl-C can lose at most is one chunk being fetched


# -- history ------------------------------------------------------------------------------------------


@dataclass
class Summary:
    venue: str
    instrument_id: str = ""
    fetched: int = 0
    already_stored: int = 0
    written: int = 0
    pages: int = 0
    venue_holes: list[tuple[int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    via: str = ""  # "direct": written here; "mesh": handed to the running mesh's writer (written = acknowledged)
    mesh: str = ""
    kept: int = 0  # rows of this run stored so far (all of them once the run ends)
    kept_from: int | None = None  # ts_event span of those rows
    kept_until: int | None = None

    def count_stored(self, rows: list, stored) -> None:  # noqa: ANN001 - a cli.handoff stored result
        """Count a stored chunk of rows (`stored`: the sink's answer) into the run's totals."""
        self.written, self.via, self.mesh = self.written + stored.rows, stored.via, stored.mesh
        self.kept += len(rows)
        first, last = min(e.ts_event for e in rows), max(e.ts_event for e in rows)
        self.kept_from = first if self.kept_from is None else min(self.kept_from, first)
        self.kept_until = last if self.kept_until is None else max(self.kept_until, last)


class _Bar:
    """click.progressbar over the time span to fetch: pages, rows and time left."""

    def __init__(self, label: str, span_ns: int, enabled: bool) -> None:
        self.pages = self.rows = 0
        self._pages0 = self._rows0 = 0  # pages and rows of the ranges before this one
        self._done = 0
        self._base_done = 0
        self._range_start = 0
        self._bar = click.progressbar(
            length=max(1, span_ns // MS), label=label, file=sys.stderr, show_eta=True, show_percent=True,
            item_show_func=lambda _: f"pages {self.pages}  rows {self.rows}",
        ) if enabled else None
        if self._bar is not None:
            self._bar.__enter__()

    def __call__(self, pages: int, rows: int, reached_ns: int) -> None:
        self.pages, self.rows = self._pages0 + pages, self._rows0 + rows
        done = self._base_done + max(0, (reached_ns - self._range_start) // MS)
        if self._bar is not None and done > self._done:
            self._bar.update(done - self._done, None)
        self._done = max(self._done, done)

    def next_range(self, start_ns: int) -> None:
        self._pages0, self._rows0 = self.pages, self.rows
        self._base_done = self._done
        self._range_start = start_ns

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


async def run_history(
    kind: str, venue: str, symbol: str, since_ns: int, until_ns: int, period: str, url: str | None, catalog: str,
    show_progress: bool, sink: Sink | None = None, summary: Summary | None = None,
) -> Summary:
    """Fetch what the catalog lacks of one venue/symbol/range and store it through `sink` (default:
    hand it to a running mesh, else write it here) as it arrives; returns the summary (`summary`,
    when given, is filled in as the run goes, so an interrupted run can tell what it kept)."""
    sink = sink or Sink(catalog, show_progress=show_progress)
    ad = adapter(venue)
    summary = summary or Summary(ad.venue)
    summary.venue = ad.venue
    if kind == "oi" and not ad.oi_history_periods and ad.oi_archive_period:  # an archive has one cadence
        if period != ad.oi_archive_period:
            summary.notes.append(f"{ad.venue}'s open-interest history is its archive's, one row every "
                                 f"{ad.oi_archive_period}: --period {period} does not apply")
        period = ad.oi_archive_period
    periods = oi_periods(ad)
    if kind == "oi" and not periods:
        summary.error = ad.oi_history_missing()
        return summary
    if kind == "oi" and period not in periods:
        summary.error = f"no {period} OI history on {ad.venue}; periods: {', '.join(periods)}"
        return summary
    client = ad.client(url)
    try:
        try:
            markets = await client.load_markets()
        except Exception as exc:  # noqa: BLE001
            summary.error = f"venue unreachable: {describe(exc)}"
            return summary
        try:
            market = ad.resolve(markets, symbol)
        except UnknownSymbol as exc:
            summary.error = str(exc)
            return summary
        iid = ad.instrument_id(market)
        summary.instrument_id = iid
        end_ns = min(until_ns - 1, time.time_ns())
        if kind == "oi":
            step_ns = PERIODS_MS[period] * MS
            start_ns, note = listing_start(market, since_ns, PERIODS_MS[period])
            # what REST no longer serves, from the venue's public archive (stored as it arrives)
            start_ns = await archive_oi(ad, market, period, start_ns, end_ns, url, catalog, sink, summary, show_progress)
            if start_ns > end_ns:
                summary.notes += [note] if note else []
                return summary
            try:
                start_ns, retention = oi_history_start(ad, period, start_ns, end_ns)  # the venue's retention
            except HistoryUnavailable as exc:
                summary.error = str(exc)
                return summary
            note = retention or note
        else:
            start_ns, note = listing_start(market, since_ns)
            # only used while nothing is stored; then the stored rows' own intervals count
            step_ns = default_funding_interval_ns(ad, market)
        if note:
            summary.notes.append(note)
        if start_ns > end_ns:
            return summary
        summary.already_stored = read_table(catalog, kind, iid, start_ns, end_ns, source=("history", "archive")).num_rows \
            if kind == "oi" else \
            len(catalog_query(catalog, "funding", iid, start_ns, end_ns, settled=True))
        todo = missing_ranges(catalog, kind, iid, start_ns, end_ns, step_ns)
        if not todo:
            return summary
        bar = _Bar(f"{ad.venue} {iid} {kind}", sum(b - a for a, b in todo), show_progress)
        store = _ChunkStore(sink, summary, ad.instrument_event(market, time.time_ns()), f"{ad.venue} {iid} {kind}")
        fetched: list = []  # (ts, interval ns or None) of every fetched row, for the venue's holes
        try:
            for a, b in todo:
                bar.next_range(a)
                if kind == "oi":
                    chunks = open_interest_chunks(ad, client, market, a, b, period, bar, summary.notes)
                else:
                    chunks = funding_chunks(ad, client, market, a, b, bar, neighbours(catalog, iid, a, b))
                async with aclosing(chunks):
                    async for chunk in chunks:
                        fetched += [(e.ts_event, None if kind == "oi" else e.interval_minutes * 60 * NS) for e in chunk]
                        await store.add(chunk)
                await store.flush()  # the next range's neighbours are read from the catalog
        except HistoryUnavailable as exc:
            summary.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the venue failed mid-way: what is stored stays
            summary.error = (f"{describe(exc)}; {summary.kept} rows of this run stored: rerun the same command "
                             f"to continue")
        finally:
            bar.close()
            summary.pages += bar.pages  # the archive part's pages and rows are counted already
            summary.fetched += len(fetched)
        await store.flush()
        if fetched:
            summary.venue_holes += _venue_holes(fetched, step_ns if kind == "oi" else None)
        return summary
    finally:
        await client.close()


class _ChunkStore:
    """Rows handed to the sink every CHUNK_ROWS (the instrument definition with the first chunk),
    each stored chunk counted into the summary."""

    def __init__(self, sink: Sink, summary: Summary, definition: object, label: str) -> None:
        self.sink, self.summary, self.label = sink, summary, label
        self.definition = [definition] if isinstance(definition, Instrument) else []  # a Malformed one is left out
        self.pending: list = []

    async def add(self, rows: list) -> None:
        self.pending += rows
        if len(self.pending) >= CHUNK_ROWS:
            await self.flush()

    async def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        stored = await self.sink.store([*self.definition, *rows], self.label)
        self.definition = []
        self.summary.count_stored(rows, stored)


def interrupted_line(kind: str, s: Summary) -> str:
    """The one line a Ctrl-C prints: what was kept, up to when, and what to do."""
    what = f"{s.venue} {s.instrument_id or ''} {kind}".replace("  ", " ")
    if not s.kept:
        return f"interrupted: {what}: nothing of this run stored yet; rerun the same command to fetch it"
    return (f"interrupted: {what}: {s.kept} rows stored ({_iso(s.kept_from)}..{_iso(s.kept_until)}); "
            f"rerun the same command to continue where it stopped")


def _venue_holes(fetched: list[tuple[int, int | None]], step_ns: int | None) -> list[tuple[int, int]]:
    """Holes in what the venue gave: [(ts, interval ns of a funding row or None)]."""
    by_ts = dict(fetched)
    ts = sorted(by_ts)
    if step_ns is not None:
        return holes_in(ts, step_ns)
    return holes_in(ts, [by_ts[t] for t in ts])


def _print_summary(kind: str, s: Summary, as_json: bool) -> None:
    if as_json:
        click.echo(json_line("history", {"series": kind, **s.__dict__}))
        return
    for note in s.notes:
        click.echo(f"note: {s.venue}: {note}", err=True)
    if s.error:
        click.echo(f"error: {s.venue}: {s.error}", err=True)
        if not s.fetched:
            return
    holes = ", ".join(f"{_iso(a)}..{_iso(b)}" for a, b in s.venue_holes[:5]) + (" ..." if len(s.venue_holes) > 5 else "")
    stored = (f"handed to the running mesh {s.mesh!r}: {s.written} acknowledged by its writer" if s.via == "mesh"
              else f"written {s.written}")
    click.echo(f"{s.venue} {s.instrument_id} {kind}: fetched {s.fetched} rows in {s.pages} pages, "
               f"already stored {s.already_stored}, {stored}, "
               f"venue holes {len(s.venue_holes)}{': ' + holes if s.venue_holes else ''}")


def _history_command(kind: str, symbols, venues, since, until, period, sandbox, emulator_file, catalog, as_json,  # noqa: ANN001
                     topology=None) -> None:  # noqa: ANN001
    venues = list(venues or VENUE_NAMES)
    catalog, endpoint = catalog_and_endpoint(catalog, topology)
    problem = directory_problem(catalog, "catalog")
    if problem:  # said before anything is downloaded
        raise click.ClickException(problem)
    until = until if until is not None else time.time_ns()
    if since is None:
        raise click.BadParameter("--since is required", param_hint="--since")
    if since >= until:
        raise click.BadParameter(f"--since {_iso(since)} is not before --until {_iso(until)}", param_hint="--since")
    progress = sys.stderr.isatty() and not as_json
    sink = Sink(catalog, endpoint)  # the fetch's bar shows the progress; each chunk's hand-off has none
    failed = False
    with emulator_urls(sandbox, emulator_file, venues) as urls:
        for venue in venues:
            for symbol in symbols:
                summary = Summary(venue.upper())
                try:
                    asyncio.run(run_history(kind, venue, symbol, since, until, period, (urls or {}).get(venue),
                                            catalog, progress, sink, summary))
                except KeyboardInterrupt:  # Ctrl-C: what is stored stays, the rerun continues from there
                    click.echo(interrupted_line(kind, summary), err=True)
                    sys.exit(130)
                _print_summary(kind, summary, as_json)
                failed |= summary.error is not None
    if failed:
        sys.exit(1)


def _history_options(f):  # noqa: ANN001, ANN202
    f = click.option("--json", "as_json", is_flag=True, help="One JSON summary line per venue and symbol.")(f)
    f = click.option("--topology", type=click.Path(dir_okay=False),
                     help=f"The mesh's topology file: its catalog is the default --catalog, and rows go to that mesh "
                          f"when it is running [default: ./{DEFAULT_TOPOLOGY} if present].")(f)
    f = click.option("--catalog", default=None,
                     help="Catalog root directory [default: the topology's catalog, else ./catalog].")(f)
    f = click.option("--emulator", "emulator_file", type=click.Path(dir_okay=False),
                     help="JSON file {venue: url} of a running emulator.")(f)
    f = click.option("--sandbox", is_flag=True, help="Use the built-in emulated venues.")(f)
    f = time_option("until", "End (exclusive, UTC); default now.")(f)
    f = time_option("since", "Start (inclusive, UTC). Required.")(f)
    f = click.option("-v", "--venue", "venues", multiple=True, type=click.Choice(VENUE_NAMES),
                     help="Venue (repeatable; default: all).")(f)
    f = click.argument("symbols", nargs=-1, required=True)(f)
    return f


@click.group("history")
def history() -> None:
    """Fetch historical open interest / settled funding into the catalog (only what is missing)."""


@history.command("oi")
@_history_options
@click.option("--period", default="5m", show_default=True, type=click.Choice(list(PERIODS_MS)),
              help="Bucket size (Binance: 5m..1d, Bybit: 5m 15m 30m 1h 4h 1d; Hyperliquid: its S3 archive's 1m).")
def history_oi(symbols, venues, since, until, sandbox, emulator_file, catalog, topology, as_json, period) -> None:  # noqa: ANN001
    """Open-interest history (Binance: REST's last 30 days, older from its public archive; Hyperliquid:
    only with -v hyperliquid, from its S3 archive, which needs AWS credentials: requester pays)."""
    with_oi = tuple(v for v in VENUE_NAMES if oi_history_periods(v))  # default: the venues that have OI history
    _history_command("oi", symbols, venues or with_oi, since, until, period, sandbox, emulator_file,
                     catalog, as_json, topology)


@history.command("funding")
@_history_options
def history_funding(symbols, venues, since, until, sandbox, emulator_file, catalog, topology, as_json) -> None:  # noqa: ANN001
    """Settled funding-rate history."""
    _history_command("funding", symbols, venues, since, until, "8h", sandbox, emulator_file, catalog, as_json,
                     topology)
