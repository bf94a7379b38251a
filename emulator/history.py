"""Owns what the venues' history endpoints share: the venues' own holes in their history, funding
settlement instants, the paging parameters of a history query, and request counting.

The values are the market model's (`emulator/market.py` is a pure function of time), so a
history row equals what the "current" endpoint served at that instant. The endpoints themselves,
with each venue's contract, are in `emulator/<venue>/history.py` (Binance openInterestHist and
fundingRate, Bybit funding/history and mark-price-kline, Hyperliquid fundingHistory; Bybit's
open-interest endpoint, which serves both, is in `emulator/bybit/rest.py`).

Deterministic holes: on about one day in five a venue "lost" 35 minutes of OI buckets, and about
2 % of funding settlements are missing (never within the last two hours).

Every venue also answers `GET /_emulator/stats`: requests served per endpoint (Hyperliquid:
`info:<type>`), so tests can assert that nothing was asked for a stored range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from emulator.common import LOG_DETAIL, as_middleware, json_response
from emulator.market import DAY, HOUR, MIN, Market, _key

HOLE_MIN_AGE_MS = 2 * HOUR
_OI_HOLE_MS = 35 * MIN


# -- holes ------------------------------------------------------------------------------------


def oi_hole(market: Market, venue: str, coin: str, t_ms: int, now_ms: int) -> bool:
    """Whether the venue lost its open-interest row at t_ms (35 minutes on ~1 day in 5)."""
    if t_ms > now_ms - HOLE_MIN_AGE_MS:
        return False
    day = t_ms // DAY
    u = market._uniform(_key("oi-hole", venue, coin), day)  # noqa: SLF001
    if u < 0.6:
        return False
    start = day * DAY + int((u - 0.6) / 0.4 * (DAY - 2 * _OI_HOLE_MS)) // (5 * MIN) * (5 * MIN)
    return start <= t_ms < start + _OI_HOLE_MS


def funding_hole(market: Market, venue: str, coin: str, settlement_ms: int, now_ms: int) -> bool:
    """Whether the venue's funding history lacks the settlement at settlement_ms (~2 %)."""
    if settlement_ms > now_ms - HOLE_MIN_AGE_MS:
        return False
    return market._uniform(_key("funding-hole", venue, coin), settlement_ms // MIN) > 0.96  # noqa: SLF001


def settlements(market: Market, venue: str, coin: str, start_ms: int, end_ms: int) -> list[int]:
    """Settlement instants in [start_ms, end_ms], oldest first (intervals may change over time)."""
    out: list[int] = []
    s = market.next_funding_ms(venue, coin, start_ms - 1)
    while s <= end_ms:
        out.append(s)
        s = market.next_funding_ms(venue, coin, s)
    return out


def last_present(market: Market, venue: str, coin: str, end_ms: int, n: int, floor_ms: int, now_ms: int) -> list[int]:
    """The last n settlements <= end_ms the venue has (holes skipped), oldest first."""
    out: list[int] = []
    t = end_ms
    while len(out) < n:
        iv = market.funding_interval_hours(venue, coin, t) * HOUR
        s = t // iv * iv
        if s < floor_ms:
            break
        if not funding_hole(market, venue, coin, s, now_ms):
            out.append(s)
        t = s - 1
    return out[::-1]


def interval_minutes_of(market: Market, venue: str, coin: str, settlement_ms: int) -> int:
    """Length of the period that ends at a settlement (what a history row stands for)."""
    return market.funding_interval_hours(venue, coin, settlement_ms - 1) * 60


# -- query parameters ---------------------------------------------------------------------------


def _int(q, name: str) -> int | None | str:  # noqa: ANN001
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return "bad"


def paging(q, max_limit: int, default: int, start: str = "startTime",  # noqa: ANN001
            end: str = "endTime") -> tuple[int, int | None, int | None] | None:
    """(limit, start, end) of a history query, limit defaulted; None if one of them is not an
    integer or limit is outside 1..max_limit (the venue's "limit invalid" answer)."""
    limit, lo, hi = _int(q, "limit"), _int(q, start), _int(q, end)
    if "bad" in (limit, lo, hi) or (limit is not None and not 1 <= limit <= max_limit):
        return None
    return limit or default, lo, hi


# -- request counting --------------------------------------------------------------------------


class RequestStats:
    """Requests served per endpoint of one venue app, counted by a middleware."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def install(self, app: web.Application) -> None:
        app.middlewares.append(as_middleware(self.count))
        app.router.add_get("/_emulator/stats", self.stats)

    async def count(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Every request but the stats' own, by path (Hyperliquid: by info type)."""
        try:
            return await handler(request)
        finally:
            if request.path != "/_emulator/stats":
                detail = request.get(LOG_DETAIL)
                self.counts[f"info:{detail}" if detail else request.path] += 1

    async def stats(self, request: web.Request) -> web.Response:
        """GET /_emulator/stats: {"requests": {endpoint: count}, "total": n}."""
        return json_response({"requests": dict(self.counts), "total": sum(self.counts.values())})


def install_stats(app: web.Application) -> Counter:
    """Count requests per endpoint and serve the counts at GET /_emulator/stats."""
    stats = RequestStats()
    stats.install(app)
    return stats.counts
