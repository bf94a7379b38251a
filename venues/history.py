"""Historical open interest and settled funding as `messages.events`: the venue-neutral driver.

    events = await fetch_open_interest_history(adapter, client, market, start_ns, end_ns, "5m")
    events = await fetch_funding_history(adapter, client, market, start_ns, end_ns)
    async for chunk in open_interest_chunks(...) / funding_chunks(...):   # the same rows, as they arrive

`adapter` is a `venues` adapter, `client` its ccxt async client (markets loaded),
`market` a ccxt market from `adapter.resolve(markets, text)`. The range is closed, in UNIX ns.
The result is one continuous series, oldest first, one row per timestamp (no duplicates), ready
for `CatalogStore(root).write(events)` or the mesh's writer. `progress(pages, rows, reached_ns)`
is called after every page (reached_ns: how far the fetch has got, for a progress bar).
The `*_chunks` generators yield the same rows in pieces as the pages arrive (`derivs history`
stores each piece at once, so an interrupted download keeps what it fetched): OI oldest first;
a funding row as soon as its neighbours are known (its interval depends on them).

This module owns what is the same on every venue: aligning the range to the period, the
retention floor (`oi_history_start`: the venue's `oi_history_retention_days`, used by the CLI and
the backfill too), padding funding ranges so edge rows have neighbours, the funding interval of
each settled row (`row_intervals`), forward paging (`forward_funding`), the listing floor
(`listing_start`) and fetching windows concurrently in order (`in_order`). How a venue pages,
and what its rows mean, is its own `venues/<venue>/history.py` (adapter methods
`oi_history_pages`, `settled_funding_pages`, `current_funding_interval_minutes`).

Units: `open_interest` is base units, one side (README, units registry).

Settled funding rows: `FundingRate(settled=True)`, ts_event = the funding time, `rate` as
published, `interval_minutes` = the length of the period the row settles, from the spacing of
the rows (`row_intervals`: robust to a missing row and to an interval change; the venue's
current interval when a row has no neighbour; rows a day beyond the range are fetched for it),
`next_funding_ns` None, `mark_price` where the venue gives it (Binance).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from messages.events import FundingRate, OpenInterest, checked
from venues.base import FundingPage, FundingRows, HistoryUnavailable, Market, Progress, VenueAdapter
from messages.timeunits import MS
from messages.timeunits import iso as _iso

MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

PERIODS_MS: dict[str, int] = {
    "1m": MIN_MS, "5m": 5 * MIN_MS, "15m": 15 * MIN_MS, "30m": 30 * MIN_MS, "1h": HOUR_MS, "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS, "6h": 6 * HOUR_MS, "12h": 12 * HOUR_MS, "1d": DAY_MS,
}
# Funding intervals a venue may use (minutes); a gap that is not one of these is not an interval.
KNOWN_INTERVALS_MIN = (60, 120, 240, 480)
FUNDING_PAD_MS = DAY_MS  # fetched beyond the range on both sides so edge rows have neighbours
MAX_PAGES = 100_000  # a venue that never stops paging is a bug, not a long history

__all__ = ["HistoryUnavailable", "PERIODS_MS", "fetch_funding_history", "fetch_open_interest_history",
           "funding_chunks", "in_order", "listing_start", "oi_history_start", "oi_periods", "open_interest_chunks", "row_intervals"]

T = TypeVar("T")


def _now_ms() -> int:
    return time.time_ns() // MS


def listing_start(market: Market, start_ns: int, step_ms: int = 1) -> tuple[int, str | None]:
    """`start_ns`, or the market's listing (ccxt `created`: Binance onboardDate, Bybit launchTime)
    when that is later, on the `step_ms` grid, with a note; nothing exists before it, so asking
    for it would only be asked again on every rerun. Hyperliquid lists no date: unchanged."""
    listed = market.get("created")
    if not listed or start_ns >= int(listed) * MS:
        return start_ns, None
    start = -(-int(listed) // step_ms) * step_ms * MS
    return start, f"{market['symbol']} was listed {_iso(int(listed) * MS)}: fetching from there"


async def in_order(items: Iterable[Any], fetch: Callable[[Any], Awaitable[T]], ahead: int) -> AsyncIterator[T]:
    """`fetch(item)` for every item, up to `ahead` at once, results yielded in the items' order
    (so what is stored is always a prefix). Closing or cancelling the generator cancels the rest."""
    items = list(items)
    tasks: list[asyncio.Task] = []
    try:
        for i in range(len(items)):
            while len(tasks) < ahead and i + len(tasks) < len(items):
                tasks.append(asyncio.ensure_future(fetch(items[i + len(tasks)])))
            yield await tasks.pop(0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- open interest ------------------------------------------------------------------------------


def oi_periods(adapter: VenueAdapter) -> tuple[str, ...]:
    """The OI history periods a venue serves: from its API, else its archive's cadence."""
    return adapter.oi_history_periods or ((adapter.oi_archive_period,) if adapter.oi_archive_period else ())


def oi_history_floor_ms(adapter: VenueAdapter, period: str, now_ms: int | None = None) -> int | None:
    """Oldest bucket the venue still serves for a period (its retention back, a minute of clock
    slack), or None: no limit but the listing date."""
    days = adapter.oi_history_retention_days
    if days is None:
        return None
    step = PERIODS_MS[period]
    floor = (now_ms if now_ms is not None else _now_ms()) - days * DAY_MS + MIN_MS
    return -(-floor // step) * step


def oi_history_start(adapter: VenueAdapter, period: str, start_ns: int, end_ns: int,
                     now_ms: int | None = None) -> tuple[int, str | None]:
    """Where the venue's OI history of [start_ns, end_ns] begins: `start_ns`, or its retention
    floor with a note saying what is gone. HistoryUnavailable if all of it is gone: the venue
    refuses such a start, and there is no other source."""
    floor_ms = oi_history_floor_ms(adapter, period, now_ms)
    if floor_ms is None or start_ns >= floor_ms * MS:
        return start_ns, None
    days, floor = adapter.oi_history_retention_days, floor_ms * MS
    if end_ns < floor:
        raise HistoryUnavailable(
            f"{adapter.venue} keeps open-interest history for {days} days only (oldest now: {_iso(floor)}); "
            f"{_iso(start_ns)}..{_iso(end_ns)} cannot be had from the venue - only from data recorded at the time")
    return floor, (f"{adapter.venue} keeps {days} days of open-interest history: {_iso(start_ns)}.."
                   f"{_iso(floor - PERIODS_MS[period] * MS)} is not available from the venue; fetching from {_iso(floor)}")


async def open_interest_chunks(
    adapter: VenueAdapter,
    client: Any,
    market: Market,
    start_ns: int,
    end_ns: int,
    period: str = "5m",
    progress: Progress | None = None,
    notes: list[str] | None = None,
) -> AsyncIterator[list[OpenInterest]]:
    """Open interest every `period` in [start_ns, end_ns], in pieces as the pages arrive, oldest
    first, each piece sorted and later than the one before (see module doc). A venue whose OI
    history is only in an archive (`oi_archive_period`) serves it at that cadence."""
    periods = oi_periods(adapter)
    if not periods:
        raise HistoryUnavailable(adapter.oi_history_missing())
    if period not in periods and not adapter.oi_history_periods:  # only an archive, of one cadence
        raise HistoryUnavailable(f"{adapter.oi_history_missing()}; its archive has one row every "
                                 f"{adapter.oi_archive_period}: ask for period {adapter.oi_archive_period}")
    if period not in periods:
        raise ValueError(f"{adapter.venue} OI history periods: {', '.join(periods)}; got {period!r}")
    step = PERIODS_MS[period]
    start_ms = -(-start_ns // MS // step) * step
    end_ms = min(end_ns // MS, _now_ms())
    start, note = oi_history_start(adapter, period, start_ms * MS, end_ms * MS, _now_ms())
    if note and notes is not None:
        notes.append(note)
    start_ms = start // MS
    if start_ms > end_ms:
        return
    last = -1
    async for page in adapter.oi_history_pages(client, market, start_ms, end_ms, period, progress):
        rows = sorted((e for e in page if e.ts_event > last), key=lambda e: e.ts_event)
        if rows:
            last = rows[-1].ts_event
            yield rows


async def fetch_open_interest_history(
    adapter: VenueAdapter,
    client: Any,
    market: Market,
    start_ns: int,
    end_ns: int,
    period: str = "5m",
    progress: Progress | None = None,
    notes: list[str] | None = None,
) -> list[OpenInterest]:
    """Open interest every `period` in [start_ns, end_ns], oldest first (see module doc)."""
    return [e async for chunk in open_interest_chunks(adapter, client, market, start_ns, end_ns, period, progress, notes)
            for e in chunk]


# -- funding --------------------------------------------------------------------------------------


class FundingProgress:
    """What a venue's funding pager reports after each page, turned into `progress` of the range."""

    def __init__(self, start_ms: int, end_ms: int, progress: Progress | None) -> None:
        self.start_ms, self.end_ms, self.progress = start_ms, end_ms, progress

    def __call__(self, pages: int, rows: int, reached_ms: int) -> None:
        """Paging forward: the rows reach `reached_ms`."""
        if self.progress:
            self.progress(pages, rows, max(self.start_ms, min(self.end_ms, reached_ms)) * MS)

    def backward(self, pages: int, rows: int, oldest_ms: int) -> None:
        """Paging backward (newest first): the rows reach back to `oldest_ms`."""
        self(pages, rows, self.start_ms + (self.end_ms - max(oldest_ms, self.start_ms)))


async def funding_chunks(
    adapter: VenueAdapter,
    client: Any,
    market: Market,
    start_ns: int,
    end_ns: int,
    progress: Progress | None = None,
    known_ns: list[int] | None = None,
) -> AsyncIterator[list[FundingRate]]:
    """Settled funding rates with funding time in [start_ns, end_ns], in pieces as the pages
    arrive (each piece sorted; pieces in the order the venue pages).

    A row's interval needs its neighbours (`row_intervals`: three before, one after), so a
    row is yielded once the pages cover them, or the range's end on that side: the same rows
    with the same intervals as all at once, whatever the paging direction.

    `known_ns`: settlement times already stored next to the range (`storage.coverage.neighbours`).
    They serve as the edge rows' neighbours for `interval_minutes`, so with two (or three) known before the
    range no padding is fetched before it, and with one known after it none after it: a top-up
    asks the venue for nothing it already gave.
    """
    start_ms, end_ms = -(-start_ns // MS), min(end_ns // MS, _now_ms())
    if start_ms > end_ms:
        return
    known = sorted({t // MS for t in known_ns or ()})
    known_before = [t for t in known if t < start_ms][-3:]
    known_after = [t for t in known if t > end_ms][:1]
    lo = start_ms if len(known_before) >= 2 else start_ms - FUNDING_PAD_MS
    hi = end_ms if known_after else min(end_ms + FUNDING_PAD_MS, _now_ms())
    raw: FundingRows = {}
    done: set[int] = set()
    fallback: list[int] = []  # the venue's current interval, asked once when a row needs it
    iid = adapter.instrument_id(market)
    async for page in adapter.settled_funding_pages(client, market, lo, hi, FundingProgress(start_ms, end_ms, progress)):
        raw.update(page.rows)
        times = sorted(set(raw) | set(known_before) | set(known_after))
        intervals = row_intervals(times)
        ready = []
        for i, ts in enumerate(times):
            if ts in done or ts not in raw or not start_ms <= ts <= end_ms:
                continue
            before_known = page.lo_ms <= lo or (i >= 3 and times[i - 3] >= page.lo_ms)
            after_known = page.hi_ms >= hi or (i + 1 < len(times) and times[i + 1] <= page.hi_ms)
            if before_known and after_known:
                ready.append(ts)
        if any(intervals[t] is None for t in ready) and not fallback:
            fallback.append(await adapter.current_funding_interval_minutes(client, market))
        ts_recv = time.time_ns()
        done.update(ready)
        if ready:
            yield [
                checked(
                    FundingRate, venue=adapter.venue, symbol=market["symbol"], instrument_id=iid, ts_event=ts * MS,
                    ts_recv=ts_recv, rate=raw[ts][0], interval_minutes=intervals[ts] or fallback[0],
                    next_funding_ns=None, mark_price=raw[ts][1], settled=True,
                )
                for ts in ready
            ]


async def fetch_funding_history(
    adapter: VenueAdapter,
    client: Any,
    market: Market,
    start_ns: int,
    end_ns: int,
    progress: Progress | None = None,
    known_ns: list[int] | None = None,
) -> list[FundingRate]:
    """Settled funding rates with funding time in [start_ns, end_ns], oldest first (see `funding_chunks`)."""
    rows = [e async for chunk in funding_chunks(adapter, client, market, start_ns, end_ns, progress, known_ns)
            for e in chunk]
    return sorted(rows, key=lambda e: e.ts_event)


def row_intervals(times: list[int]) -> dict[int, int | None]:
    """Funding time (ms, sorted) -> minutes of the period it settles, None if undecidable.

    A row settles the period since the previous settlement, so the gap to the previous row is
    taken when the gaps before it are the same (a steady run, also right after an interval
    change): the gap before, and the one before that where there is one, so two holes in a row
    (hourly rows two hours apart twice) are not taken for a 2-hour interval. Otherwise the
    previous row may be missing (a hole doubles the gap), and the smaller of the gaps to both
    neighbours is taken. Only known funding intervals count. A row with a hole on each side (an
    hourly row two hours from both neighbours) cannot be told from the first row of a change
    to 2 h from the spacing alone: it is taken for the change.
    """
    def gap(i: int, j: int) -> int | None:
        if i < 0 or j >= len(times):
            return None
        g = round((times[j] - times[i]) / MIN_MS)
        return g if g in KNOWN_INTERVALS_MIN else None

    out: dict[int, int | None] = {}
    for i, ts in enumerate(times):
        prev, before, after = gap(i - 1, i), gap(i - 2, i - 1), gap(i, i + 1)
        earlier = gap(i - 3, i - 2) if i >= 3 else before  # no row there: nothing against the run
        if prev is not None and prev == before == earlier:
            out[ts] = prev
        else:
            known = [g for g in (prev, after) if g is not None]
            out[ts] = min(known) if known else None
    return out


async def forward_funding(client: Any, market: Market, lo: int, hi: int, report: Callable[[int, int, int], None],
                          limit: int | None, page: int,
                          read: Callable[[Any], tuple[int, float, float | None]]) -> AsyncIterator[FundingPage]:
    """Funding history paged forward (Binance, Hyperliquid): oldest first, next startTime = last
    funding time + 1, until a short page. `limit` is sent as is (None: the venue's own page of
    `page` rows); `read(ccxt row)` gives (funding time ms, rate, mark price or None)."""
    since, total = lo, 0
    for pages in range(1, MAX_PAGES):
        rows = [read(r) for r in await client.fetch_funding_rate_history(market["symbol"], since, limit, {"until": hi})]
        total += len(rows)
        last = max((ts for ts, _, _ in rows), default=hi)
        report(pages, total, last)
        final = len(rows) < page
        yield FundingPage({ts: (rate, mark) for ts, rate, mark in rows}, lo, hi if final else last)
        if final:
            break
        since = last + 1


def default_funding_interval_ns(adapter: VenueAdapter, market: Market) -> int:
    """The funding interval to plan with while nothing is stored (then the rows' own count)."""
    return adapter.default_funding_interval_minutes(market) * 60 * 10**9
