"""Historical open interest and settled funding, paginated per venue, as `messages.events`.

    events = await fetch_open_interest_history(adapter, client, market, start_ns, end_ns, "5m")
    events = await fetch_funding_history(adapter, client, market, start_ns, end_ns)

`adapter` is an `venues` adapter, `client` its ccxt async client (markets loaded),
`market` a ccxt market from `adapter.resolve(markets, text)`. The range is closed, in UNIX ns.
The result is one continuous series, oldest first, one row per timestamp (no duplicates), ready
for `CatalogStore(root).write(events)` or the mesh's writer. `progress(pages, rows, reached_ns)`
is called after every page (reached_ns: how far the fetch has got, for a progress bar).

How each venue is paged (ccxt 4.5.90; see `/work/shared/venues.md`):

- Binance OI (`/futures/data/openInterestHist`): windows of at most 500 periods
  (startTime + endTime + limit=500). Only the last 30 days exist: an older start is clipped to
  the retention floor (a note is added to `notes`), a range entirely older raises
  `HistoryUnavailable` - the venue refuses such a startTime, and there is no other source.
- Binance funding (`/fapi/v1/fundingRate`): by hand, next startTime = last fundingTime + 1,
  limit 1000 (not ccxt's `paginate`, which steps in fixed 8 h x 1000 windows and loses rows of
  4 h / 1 h symbols).
- Bybit OI (`/v5/market/open-interest`): startTime + endTime + limit=200, then the
  `nextPageCursor` with the same window (the endpoint walks backwards from endTime; a lone
  startTime is ignored by the venue). USD value: Bybit's OI history has none, so it is the
  one-sided OI x the mark price at the bucket's instant (the open of the mark-price kline that
  starts there, `/v5/market/mark-price-kline`, 1000 per page).
- Bybit funding (`/v5/market/funding/history`): always startTime AND endTime (startTime alone is
  an error); newest first, 200 per page, next endTime = oldest row - 1.
- Hyperliquid funding (`fundingHistory`): 500 rows per answer, oldest first, next
  startTime = last time + 1. Hyperliquid has no OI history: `HistoryUnavailable`.

Units: `open_interest` is base units, one side. Bybit's `openInterest` counts both sides on rows of
every date (README, units registry): `singleOpenInterest` is used when present, otherwise
`openInterest` is halved, so a series stitched across 2026-06-11 has no step there.

Settled funding rows: `FundingRate(settled=True)`, ts_event = the funding time, `rate` as
published, `interval_minutes` = the length of the period the row settles, from the spacing of
the rows (`row_intervals`: robust to a missing row and to an interval change; the venue's
current interval when a row has no neighbour; rows a day beyond the range are fetched for it), `next_funding_ns` None, `mark_price`
where the venue gives it (Binance).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from venues import bybit
from venues.base import Market, VenueAdapter
from messages.events import FundingRate, OpenInterest

MS = 1_000_000
MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

Progress = Callable[[int, int, int], None]  # (pages so far, rows so far, reached ts ns)

PERIODS_MS: dict[str, int] = {
    "5m": 5 * MIN_MS, "15m": 15 * MIN_MS, "30m": 30 * MIN_MS, "1h": HOUR_MS, "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS, "6h": 6 * HOUR_MS, "12h": 12 * HOUR_MS, "1d": DAY_MS,
}
# Periods each venue's OI history serves (ccxt timeframe names).
OI_PERIODS: dict[str, tuple[str, ...]] = {
    "binance": ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"),
    "bybit": ("5m", "15m", "30m", "1h", "4h", "1d"),
    "hyperliquid": (),
}
BYBIT_INTERVAL = {"5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "4h": "4h", "1d": "1d"}
BYBIT_KLINE = {"5m": "5", "15m": "15", "30m": "30", "1h": "60", "4h": "240", "1d": "D"}

BINANCE_OI_RETENTION_MS = 30 * DAY_MS
BINANCE_OI_PAGE = 500
BINANCE_FUNDING_PAGE = 1000
BYBIT_PAGE = 200
BYBIT_KLINE_PAGE = 1000
HYPERLIQUID_PAGE = 500
# Funding intervals a venue may use (minutes); a gap that is not one of these is not an interval.
KNOWN_INTERVALS_MIN = (60, 120, 240, 480)
FUNDING_PAD_MS = DAY_MS  # fetched beyond the range on both sides so edge rows have neighbours
_MAX_PAGES = 100_000  # a venue that never stops paging is a bug, not a long history


class HistoryUnavailable(Exception):
    """The venue has no history of this kind for the range (never had, or no longer keeps it)."""


def _now_ms() -> int:
    return time.time_ns() // MS


def binance_oi_floor_ms(period: str, now_ms: int | None = None) -> int:
    """Oldest bucket Binance still serves for a period (30 days back, a minute of clock slack)."""
    step = PERIODS_MS[period]
    floor = (now_ms if now_ms is not None else _now_ms()) - BINANCE_OI_RETENTION_MS + MIN_MS
    return -(-floor // step) * step


def oi_history_floor_ns(venue: str, period: str, now_ms: int | None = None) -> int | None:
    """Oldest OI timestamp the venue can serve (None: no limit but the listing date)."""
    return binance_oi_floor_ms(period, now_ms) * MS if venue == "binance" else None


# -- open interest ------------------------------------------------------------------------------


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
    venue = adapter.name
    if venue == "hyperliquid":
        raise HistoryUnavailable(
            "Hyperliquid publishes no open-interest history (its API has current values only); "
            "the daemon records it by polling metaAndAssetCtxs - see `derivs coverage`"
        )
    if period not in OI_PERIODS[venue]:
        raise ValueError(f"{adapter.venue} OI history periods: {', '.join(OI_PERIODS[venue])}; got {period!r}")
    step = PERIODS_MS[period]
    start_ms = -(-start_ns // MS // step) * step
    end_ms = min(end_ns // MS, _now_ms())
    if venue == "binance":
        floor = binance_oi_floor_ms(period)
        if end_ms < floor:
            raise HistoryUnavailable(
                f"Binance keeps open-interest history for 30 days only (oldest now: {_iso(floor)}); "
                f"{_iso(start_ms)}..{_iso(end_ms)} cannot be had from the venue - only from data recorded at the time"
            )
        if start_ms < floor:
            if notes is not None:
                notes.append(f"Binance keeps 30 days of open-interest history: {_iso(start_ms)}..{_iso(floor - step)} "
                             f"is not available from the venue; fetching from {_iso(floor)}")
            start_ms = floor
    if start_ms > end_ms:
        return []
    if venue == "binance":
        return await _binance_oi(adapter, client, market, start_ms, end_ms, period, progress)
    return await _bybit_oi(adapter, client, market, start_ms, end_ms, period, progress)


async def _binance_oi(adapter, client, market, start_ms, end_ms, period, progress) -> list[OpenInterest]:  # noqa: ANN001
    step = PERIODS_MS[period]
    iid = adapter.instrument_id(market)
    ts_recv = time.time_ns()
    by_ts: dict[int, OpenInterest] = {}
    pages = 0
    for w_start in range(start_ms, end_ms + 1, BINANCE_OI_PAGE * step):
        w_end = min(w_start + (BINANCE_OI_PAGE - 1) * step, end_ms)
        rows = await client.fetch_open_interest_history(
            market["symbol"], period, w_start, BINANCE_OI_PAGE, {"until": w_end}
        )
        pages += 1
        for r in rows:
            ts = r["timestamp"]
            if start_ms <= ts <= end_ms:
                by_ts[ts] = OpenInterest(
                    venue="BINANCE", symbol=market["symbol"], instrument_id=iid, ts_event=ts * MS, ts_recv=ts_recv,
                    open_interest=float(r["info"]["sumOpenInterest"]),
                    open_interest_value=float(r["info"]["sumOpenInterestValue"]),
                    source="history", period_s=step // 1000,
                )
        if progress:
            progress(pages, len(by_ts), w_end * MS)
    return [by_ts[t] for t in sorted(by_ts)]


async def _bybit_oi(adapter, client, market, start_ms, end_ms, period, progress) -> list[OpenInterest]:  # noqa: ANN001
    category = "linear" if market.get("linear") else "inverse"
    request = {"category": category, "symbol": market["id"], "intervalTime": BYBIT_INTERVAL[period],
               "startTime": start_ms, "endTime": end_ms, "limit": BYBIT_PAGE}
    raw: dict[int, float] = {}
    pages = 0
    cursor = None
    while pages < _MAX_PAGES:
        response = await client.publicGetV5MarketOpenInterest({**request, **({"cursor": cursor} if cursor else {})})
        pages += 1
        result = response.get("result") or {}
        for row in result.get("list") or []:
            ts = int(row["timestamp"])
            if start_ms <= ts <= end_ms:
                raw[ts] = bybit.one_side(row)
        cursor = result.get("nextPageCursor") or None
        if progress:
            # newest first: the fetch has covered [oldest so far, end]
            progress(pages, len(raw), end_ms * MS - (min(raw) if raw else end_ms) * MS + start_ms * MS)
        if not cursor or not result.get("list"):
            break
    marks = await _bybit_marks(client, market, category, start_ms, end_ms, period)
    iid = adapter.instrument_id(market)
    ts_recv = time.time_ns()
    out = []
    for ts in sorted(raw):
        mark = marks.get(ts)
        if mark is None:  # no candle opening there: the nearest earlier one's close
            earlier = [t for t in marks if t < ts]
            mark = marks[max(earlier)] if earlier else 0.0
        out.append(OpenInterest(venue="BYBIT", symbol=market["symbol"], instrument_id=iid, ts_event=ts * MS,
                                ts_recv=ts_recv, open_interest=raw[ts], open_interest_value=raw[ts] * mark,
                                source="history", period_s=PERIODS_MS[period] // 1000))
    return out


async def _bybit_marks(client, market, category, start_ms, end_ms, period) -> dict[int, float]:  # noqa: ANN001
    """Mark price at each bucket start: the open of the mark-price kline starting there."""
    marks: dict[int, float] = {}
    end = end_ms
    for _ in range(_MAX_PAGES):
        response = await client.publicGetV5MarketMarkPriceKline({
            "category": category, "symbol": market["id"], "interval": BYBIT_KLINE[period],
            "start": start_ms, "end": end, "limit": BYBIT_KLINE_PAGE,
        })
        rows = (response.get("result") or {}).get("list") or []
        for row in rows:
            marks[int(row[0])] = float(row[1])
        if len(rows) < BYBIT_KLINE_PAGE:
            break
        end = min(int(r[0]) for r in rows) - 1
        if end < start_ms:
            break
    return marks


# -- funding --------------------------------------------------------------------------------------


async def fetch_funding_history(
    adapter: VenueAdapter,
    client: Any,
    market: Market,
    start_ns: int,
    end_ns: int,
    progress: Progress | None = None,
    known_ns: list[int] | None = None,
) -> list[FundingRate]:
    """Settled funding rates with funding time in [start_ns, end_ns], oldest first.

    `known_ns`: settlement times already stored next to the range (`catalog.coverage.neighbours`).
    They serve as the edge rows' neighbours for `interval_minutes`, so with two known before the
    range no padding is fetched before it, and with one known after it none after it: a top-up
    asks the venue for nothing it already gave.
    """
    start_ms, end_ms = -(-start_ns // MS), min(end_ns // MS, _now_ms())
    if start_ms > end_ms:
        return []
    known = sorted({t // MS for t in known_ns or ()})
    known_before = [t for t in known if t < start_ms][-2:]
    known_after = [t for t in known if t > end_ms][:1]
    lo = start_ms if len(known_before) == 2 else start_ms - FUNDING_PAD_MS
    hi = end_ms if known_after else min(end_ms + FUNDING_PAD_MS, _now_ms())

    def report(pages: int, rows: int, reached_ms: int) -> None:
        if progress:
            progress(pages, rows, max(start_ms, min(end_ms, reached_ms)) * MS)

    if adapter.name == "binance":
        raw = await _forward_funding(client, market, lo, hi, report, BINANCE_FUNDING_PAGE, BINANCE_FUNDING_PAGE, True)
    elif adapter.name == "bybit":
        raw = await _bybit_funding(client, market, lo, hi, end_ms, start_ms, report)
    else:
        raw = await _forward_funding(client, market, lo, hi, report, None, HYPERLIQUID_PAGE, False)
    intervals = row_intervals(sorted(set(raw) | set(known_before) | set(known_after)))
    fallback = 480
    if any(m is None for t, m in intervals.items() if start_ms <= t <= end_ms):
        fallback = await _current_interval_minutes(adapter, client, market)
    iid = adapter.instrument_id(market)
    ts_recv = time.time_ns()
    return [
        FundingRate(
            venue=adapter.venue, symbol=market["symbol"], instrument_id=iid, ts_event=ts * MS, ts_recv=ts_recv,
            rate=raw[ts][0], interval_minutes=intervals[ts] or fallback, next_funding_ns=None,
            mark_price=raw[ts][1], settled=True,
        )
        for ts in sorted(raw)
        if start_ms <= ts <= end_ms
    ]


def row_intervals(times: list[int]) -> dict[int, int | None]:
    """Funding time (ms, sorted) -> minutes of the period it settles, None if undecidable.

    A row settles the period since the previous settlement, so the gap to the previous row is
    taken when the gap before that one is the same (a steady run, also right after an interval
    change). Otherwise the previous row may be missing (a hole doubles the gap), and the
    smaller of the gaps to both neighbours is taken. Only known funding intervals count.
    """
    def gap(i: int, j: int) -> int | None:
        if i < 0 or j >= len(times):
            return None
        g = round((times[j] - times[i]) / MIN_MS)
        return g if g in KNOWN_INTERVALS_MIN else None

    out: dict[int, int | None] = {}
    for i, ts in enumerate(times):
        prev, before, after = gap(i - 1, i), gap(i - 2, i - 1), gap(i, i + 1)
        if prev is not None and prev == before:
            out[ts] = prev
        else:
            known = [g for g in (prev, after) if g is not None]
            out[ts] = min(known) if known else None
    return out


async def _forward_funding(client, market, lo, hi, report, limit, page, with_mark) -> dict[int, tuple[float, float | None]]:  # noqa: ANN001
    """Binance and Hyperliquid: oldest first, next startTime = last funding time + 1, until a
    short page. `limit` is sent as is (None: the venue's own page of `page` rows)."""
    raw: dict[int, tuple[float, float | None]] = {}
    since = lo
    for pages in range(1, _MAX_PAGES):
        rows = await client.fetch_funding_rate_history(market["symbol"], since, limit, {"until": hi})
        for r in rows:
            mark = r["info"].get("markPrice") if with_mark else None
            raw[r["timestamp"]] = (float(r["info"]["fundingRate"]), float(mark) if mark not in (None, "") else None)
        report(pages, len(raw), max(raw) if raw else hi)
        if len(rows) < page:
            break
        since = max(r["timestamp"] for r in rows) + 1
    return raw


async def _bybit_funding(client, market, lo, hi, end_ms, start_ms, report) -> dict[int, tuple[float, float | None]]:  # noqa: ANN001
    raw: dict[int, tuple[float, float | None]] = {}
    until = hi
    for pages in range(1, _MAX_PAGES):
        # startTime and endTime together: a lone startTime is an error on Bybit
        rows = await client.fetch_funding_rate_history(market["symbol"], lo, BYBIT_PAGE, {"until": until})
        for r in rows:
            raw[r["timestamp"]] = (float(r["info"]["fundingRate"]), None)
        oldest = min((r["timestamp"] for r in rows), default=lo)
        report(pages, len(raw), start_ms + (end_ms - max(oldest, start_ms)))
        if len(rows) < BYBIT_PAGE:
            break
        until = oldest - 1
        if until < lo:
            break
    return raw


def default_funding_interval_ns(venue: str, market: Market) -> int:
    """The funding interval to plan with while nothing is stored (then the rows' own count)."""
    minutes = int((market.get("info") or {}).get("fundingInterval") or 0)
    return minutes * 60 * 10**9 or (3600 if venue == "hyperliquid" else 8 * 3600) * 10**9


async def _current_interval_minutes(adapter: VenueAdapter, client: Any, market: Market) -> int:
    """The venue's current funding interval (used only for a row without neighbours)."""
    if adapter.name == "hyperliquid":
        return 60
    if adapter.name == "bybit":
        return int((market.get("info") or {}).get("fundingInterval") or 480)
    try:
        infos = await client.fetch_funding_intervals([market["symbol"]])
        hours = (infos.get(market["symbol"]) or {}).get("info", {}).get("fundingIntervalHours")
        return int(hours) * 60 if hours else 480
    except Exception:  # noqa: BLE001 - the list only names adjusted symbols; absent = 8 h
        return 480


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
