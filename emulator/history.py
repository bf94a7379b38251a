"""History endpoints of the emulated venues, with the real venues' contracts.

The values are the market model's (`emulator/market.py` is a pure function of time), so a
history row equals what the "current" endpoint served at that instant. What is emulated:

Binance USDT-M
- `GET /futures/data/openInterestHist`: symbol, period (5m 15m 30m 1h 2h 4h 6h 12h 1d; anything
  else -> 400 -1130), limit (default 30, max 500), startTime/endTime; rows oldest first
  `{"symbol","sumOpenInterest","sumOpenInterestValue","timestamp"}`. Only the last **30 days**
  are kept: a startTime older than that is refused (400 -1130 "parameter 'startTime' is
  invalid.", what ccxt's maintainers report the live venue answers); an endTime-only window
  reaching back further is clipped to the 30 days.
- `GET /fapi/v1/fundingRate`: symbol, startTime, endTime, limit (default 100, max 1000); rows
  oldest first `{"symbol","fundingRate","fundingTime","markPrice"}`; with startTime the first
  `limit` rows from it, otherwise the last `limit` rows up to endTime (or now).

Bybit v5 (the open-interest handler itself lives in `emulator/bybit.py`; holes come from here)
- `GET /v5/market/funding/history`: category, symbol, startTime/endTime, limit 1-200 (default
  200); newest first, the newest `limit` rows of the window; startTime without endTime ->
  retCode 10001.
- `GET /v5/market/mark-price-kline`: category, symbol, interval, start, end, limit 1-1000
  (default 200); newest first `[startTime, open, high, low, close]`.

Hyperliquid
- `POST /info {"type":"fundingHistory","coin","startTime","endTime"?}`: oldest first, at most
  500 rows from startTime; `time` carries a few ms of settlement latency like the real one.
  There is no open-interest history on Hyperliquid.

Deterministic holes: on about one day in five a venue "lost" 35 minutes of OI buckets, and about
2 % of funding settlements are missing (never within the last two hours).

Every venue also answers `GET /_emulator/stats`: requests served per endpoint (Hyperliquid:
`info:<type>`), so tests can assert that nothing was asked for a stored range.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from emulator.common import VenueContext, fixed, json_response, stripped
from emulator.market import DAY, HOUR, MIN, Market, _key

BINANCE_OI_PERIODS: dict[str, int] = {
    "5m": 5 * MIN, "15m": 15 * MIN, "30m": 30 * MIN, "1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR,
    "6h": 6 * HOUR, "12h": 12 * HOUR, "1d": DAY,
}
BINANCE_OI_RETENTION_MS = 30 * DAY
BYBIT_KLINE_INTERVALS: dict[str, int] = {
    "1": MIN, "3": 3 * MIN, "5": 5 * MIN, "15": 15 * MIN, "30": 30 * MIN, "60": HOUR, "120": 2 * HOUR,
    "240": 4 * HOUR, "360": 6 * HOUR, "720": 12 * HOUR, "D": DAY,
}
HL_PAGE = 500
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


# -- request counting --------------------------------------------------------------------------


def install_stats(app: web.Application) -> Counter:
    """Count requests per endpoint and serve the counts at GET /_emulator/stats."""
    counts: Counter = Counter()

    @web.middleware
    async def count(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        try:
            return await handler(request)
        finally:
            if request.path != "/_emulator/stats":
                detail = request.get("log_detail")
                counts[f"info:{detail}" if detail else request.path] += 1

    async def stats(request: web.Request) -> web.Response:
        return json_response({"requests": dict(counts), "total": sum(counts.values())})

    app.middlewares.append(count)
    app.router.add_get("/_emulator/stats", stats)
    return counts


# -- Binance ----------------------------------------------------------------------------------


def _int(q, name: str) -> int | None | str:  # noqa: ANN001
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return "bad"


def _paging(q, max_limit: int, default: int, start: str = "startTime",  # noqa: ANN001
            end: str = "endTime") -> tuple[int, int | None, int | None] | None:
    """(limit, start, end) of a history query, limit defaulted; None if one of them is not an
    integer or limit is outside 1..max_limit (the venue's "limit invalid" answer)."""
    limit, lo, hi = _int(q, "limit"), _int(q, start), _int(q, end)
    if "bad" in (limit, lo, hi) or (limit is not None and not 1 <= limit <= max_limit):
        return None
    return limit or default, lo, hi


def install_binance(app: web.Application, ctx: VenueContext) -> None:
    from emulator.binance import VENUE, _error, _invalid_symbol, _missing, instruments  # binance imports this module first

    market = ctx.market

    def lookup(symbol: str | None, now: int):  # noqa: ANN202
        return next((i for i in instruments(now) if i.symbol == symbol and i.servable and i.perpetual), None)

    async def open_interest_hist(request: web.Request) -> web.Response:
        q = request.query
        now = ctx.now_ms()
        if not q.get("symbol"):
            return _missing("symbol")
        inst = lookup(q["symbol"], now)
        if inst is None:
            return _invalid_symbol()
        step = BINANCE_OI_PERIODS.get(q.get("period", ""))
        if step is None:
            return _error(-1130, "Data sent for parameter 'period' is not valid.")
        paging = _paging(q, 500, 30)
        if paging is None:
            return _error(-1130, "Data sent for parameter 'limit' is not valid.")
        limit, start, end = paging
        floor = now - BINANCE_OI_RETENTION_MS
        if start is not None and start < floor:
            return _error(-1130, "parameter 'startTime' is invalid.")
        newest = (min(now, end if end is not None else now) // step) * step
        floor = max(floor, inst.onboard_ms)
        if start is not None:
            first = -(-max(start, floor) // step) * step
            stamps = list(range(first, newest + 1, step))
            stamps = [t for t in stamps if not oi_hole(market, "binance", inst.coin, t, now)][:limit]
        else:
            stamps = []
            t = newest
            while t >= floor and len(stamps) < limit:
                if not oi_hole(market, "binance", inst.coin, t, now):
                    stamps.append(t)
                t -= step
            stamps.reverse()
        dp = len(inst.spec.step.split(".", 1)[1]) if "." in inst.spec.step else 0
        rows, records = [], []
        for t in stamps:
            oi_str = fixed(round(market.open_interest(inst.coin, t, "binance"), dp), 8)
            value_str = fixed(float(oi_str) * market.mark_price(inst.coin, t, "binance"), 8)
            rows.append({"symbol": inst.symbol, "sumOpenInterest": oi_str, "sumOpenInterestValue": value_str,
                         "timestamp": t})
            records.append({"venue": VENUE, "kind": "open_interest_history", "endpoint": request.path,
                            "coin": inst.coin, "raw_symbol": inst.symbol, "ts_ms": t, "served_ns": time.time_ns(),
                            "open_interest": float(oi_str), "open_interest_value": float(value_str),
                            "period": q["period"]})
        ctx.recorder.write(records)
        return json_response(rows)

    async def funding_rate(request: web.Request) -> web.Response:
        q = request.query
        now = ctx.now_ms()
        paging = _paging(q, 1000, 100)
        if paging is None:
            return _error(-1130, "Data sent for parameter 'limit' is not valid.")
        limit, start, end = paging
        if q.get("symbol"):
            inst = lookup(q["symbol"], now)
            if inst is None:
                return _invalid_symbol()
            insts = [inst]
        else:
            insts = [i for i in instruments(now) if i.servable and i.perpetual]
        hi = min(now, end if end is not None else now)
        pairs: list[tuple[int, object]] = []
        for inst in insts:
            if start is not None:
                stamps = settlements(market, "binance", inst.coin, max(start, inst.onboard_ms), hi)
                stamps = [s for s in stamps if not funding_hole(market, "binance", inst.coin, s, now)][:limit]
            else:
                stamps = last_present(market, "binance", inst.coin, hi, limit, inst.onboard_ms, now)
            pairs += [(s, inst) for s in stamps]
        pairs.sort(key=lambda p: p[0])
        pairs = pairs[:limit] if start is not None else pairs[-limit:]
        rows, records = [], []
        for s, inst in pairs:
            rate = market.funding_rate("binance", inst.coin, s)
            tick = float(inst.spec.tick)
            mark = fixed(round(market.mark_price(inst.coin, s, "binance") / tick) * tick, 8)
            rows.append({"symbol": inst.symbol, "fundingRate": fixed(rate, 8), "fundingTime": s, "markPrice": mark})
            records.append({"venue": VENUE, "kind": "funding_history", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": s, "served_ns": time.time_ns(),
                            "rate": float(fixed(rate, 8)), "mark_price": float(mark),
                            "interval_minutes": interval_minutes_of(market, "binance", inst.coin, s)})
        ctx.recorder.write(records)
        return json_response(rows)

    app.router.add_get("/futures/data/openInterestHist", open_interest_hist)
    app.router.add_get("/fapi/v1/fundingRate", funding_rate)
    install_stats(app)


# -- Bybit ------------------------------------------------------------------------------------


def install_bybit(app: web.Application, ctx: VenueContext) -> None:
    from emulator.bybit import VENUE, _envelope, instruments  # bybit imports this module first
    from emulator.bybit import _params_error as bad  # retCode 10001

    market = ctx.market

    def lookup(symbol: str | None, now: int):  # noqa: ANN202
        return next((i for i in instruments(now) if i.symbol == symbol), None)

    async def funding_history(request: web.Request) -> web.Response:
        q = request.query
        now = ctx.now_ms()
        if q.get("category") not in ("linear", "inverse"):
            return bad(now, "params error: category is invalid")
        inst = lookup(q.get("symbol"), now)
        if inst is None or not inst.perpetual:
            return bad(now, "params error: symbol invalid")
        paging = _paging(q, 200, 200)
        if paging is None:
            return bad(now, "params error: limit invalid")
        limit, start, end = paging
        if start is not None and end is None:
            return bad(now, "params error: startTime and endTime must be passed together")
        hi = min(now, end if end is not None else now)
        lo = max(start or 0, inst.launch_ms)
        stamps = last_present(market, "bybit", inst.coin, hi, limit, lo, now)
        rows, records = [], []
        for s in reversed(stamps):  # newest first
            rate_str = stripped(market.funding_rate("bybit", inst.coin, s), 6)
            rows.append({"symbol": inst.symbol, "fundingRate": rate_str, "fundingRateTimestamp": str(s)})
            records.append({"venue": VENUE, "kind": "funding_history", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": s, "served_ns": time.time_ns(),
                            "rate": float(rate_str),
                            "interval_minutes": interval_minutes_of(market, "bybit", inst.coin, s)})
        ctx.recorder.write(records)
        return _envelope({"category": q["category"], "list": rows}, now)

    async def mark_price_kline(request: web.Request) -> web.Response:
        q = request.query
        now = ctx.now_ms()
        if q.get("category") not in ("linear", "inverse"):
            return bad(now, "params error: category is invalid")
        inst = lookup(q.get("symbol"), now)
        if inst is None:
            return bad(now, "params error: symbol invalid")
        step = BYBIT_KLINE_INTERVALS.get(q.get("interval", ""))
        if step is None:
            return bad(now, "params error: interval invalid")
        paging = _paging(q, 1000, 200, "start", "end")
        if paging is None:
            return bad(now, "params error: limit invalid")
        limit, start, end = paging
        t = (min(now, end if end is not None else now) // step) * step
        lo = max(start or 0, inst.launch_ms)
        tick = float(inst.spec.tick)

        def px(x: float) -> str:
            return fixed(round(x / tick) * tick, inst.spec.price_scale)

        rows, records = [], []
        while t >= lo and len(rows) < limit:
            o = px(market.mark_price(inst.coin, t, "bybit"))
            c = px(market.mark_price(inst.coin, min(now, t + step - 1), "bybit"))
            mid = px(market.mark_price(inst.coin, t + step // 2, "bybit"))
            hi_, lo_ = max(o, c, mid, key=float), min(o, c, mid, key=float)
            rows.append([str(t), o, hi_, lo_, c])
            records.append({"venue": VENUE, "kind": "mark_price_kline", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": t, "served_ns": time.time_ns(), "open": float(o),
                            "close": float(c), "interval": q["interval"]})
            t -= step
        ctx.recorder.write(records)
        return _envelope({"symbol": inst.symbol, "category": q["category"], "list": rows}, now)

    app.router.add_get("/v5/market/funding/history", funding_history)
    app.router.add_get("/v5/market/mark-price-kline", mark_price_kline)
    install_stats(app)


# -- Hyperliquid ------------------------------------------------------------------------------


def hl_latency_ms(market: Market, coin: str, settlement_ms: int) -> int:
    """The few milliseconds by which Hyperliquid's `time` trails the hour (0..79 ms)."""
    return int((market._uniform(_key("hl-latency", coin), settlement_ms // HOUR) + 1.0) * 40)  # noqa: SLF001


def hyperliquid_funding_history(ctx: VenueContext, body: dict, listed: tuple[str, ...]) -> web.Response:
    """POST /info {"type": "fundingHistory", ...}: at most 500 rows from startTime, oldest first."""
    from emulator.hyperliquid import VENUE, _deserialize_error

    market = ctx.market
    now = ctx.now_ms()
    if "coin" not in body:
        return _deserialize_error("missing field `coin` at line 1 column 2")
    if "startTime" not in body:
        return _deserialize_error("missing field `startTime` at line 1 column 2")
    try:
        start = int(body["startTime"])
        end = min(now, int(body["endTime"])) if body.get("endTime") is not None else now
    except (TypeError, ValueError):
        return _deserialize_error("invalid type: expected u64 at line 1 column 2")
    coin = body["coin"]
    if coin not in listed:
        return json_response([])
    rows, records = [], []
    s = market.next_funding_ms("hyperliquid", coin, start - 1 - 80)  # a row's time may trail the hour
    while s <= end and len(rows) < HL_PAGE:
        t = s + hl_latency_ms(market, coin, s)
        if start <= t <= end and not funding_hole(market, "hyperliquid", coin, s, now):
            rate_str = stripped(market.funding_rate("hyperliquid", coin, s), 10)
            row = {"coin": coin, "fundingRate": rate_str, "time": t}
            if market._uniform(_key("hl-premium", coin), s // HOUR) > -0.9:  # noqa: SLF001 - some rows lack it
                premium = market.mark_price(coin, s, "hyperliquid") / market.index_price(coin, s) - 1.0
                row = {"coin": coin, "fundingRate": rate_str, "premium": fixed(premium, 8), "time": t}
            rows.append(row)
            records.append({"venue": VENUE, "kind": "funding_history", "endpoint": "fundingHistory", "coin": coin,
                            "raw_symbol": coin, "ts_ms": t, "served_ns": time.time_ns(), "rate": float(rate_str),
                            "interval_minutes": 60})
        s = market.next_funding_ms("hyperliquid", coin, s)
    ctx.recorder.write(records)
    return json_response(rows)
