"""Owns Bybit v5's history endpoints, with the real venue's contract (its open-interest history is
served by the open-interest endpoint itself, `rest.py`):

- `GET /v5/market/funding/history`: category, symbol, startTime/endTime, limit 1-200 (default
  200); newest first, the newest `limit` rows of the window; startTime without endTime ->
  retCode 10001.
- `GET /v5/market/mark-price-kline`: category, symbol, interval, start, end, limit 1-1000
  (default 200); newest first `[startTime, open, high, low, close]`.

Holes, settlements and paging are `emulator/history.py`'s.
"""

from __future__ import annotations

import time

from aiohttp import web

from emulator.bybit.answers import envelope, params_error
from emulator.bybit.instruments import VENUE, Instrument, by_symbol
from emulator.common import VenueContext, fixed, stripped
from emulator.history import interval_minutes_of, last_present, paging
from emulator.market import DAY, HOUR, MIN

KLINE_INTERVALS: dict[str, int] = {
    "1": MIN, "3": 3 * MIN, "5": 5 * MIN, "15": 15 * MIN, "30": 30 * MIN, "60": HOUR, "120": 2 * HOUR,
    "240": 4 * HOUR, "360": 6 * HOUR, "720": 12 * HOUR, "D": DAY,
}


class BybitHistory:
    """The history handlers over one venue context."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.market = ctx.market

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v5/market/funding/history", self.funding_history),
            web.get("/v5/market/mark-price-kline", self.mark_price_kline),
        ]

    def lookup(self, symbol: str | None, now: int) -> Instrument | None:
        return by_symbol(self.market, now).get(symbol or "")

    async def funding_history(self, request: web.Request) -> web.Response:
        """GET /v5/market/funding/history: settled rates, newest first, the newest `limit` of the window."""
        q = request.query
        now = self.ctx.now_ms()
        if q.get("category") not in ("linear", "inverse"):
            return params_error(now, "params error: category is invalid")
        inst = self.lookup(q.get("symbol"), now)
        if inst is None or not inst.perpetual:
            return params_error(now, "params error: symbol invalid")
        window = paging(q, 200, 200)
        if window is None:
            return params_error(now, "params error: limit invalid")
        limit, start, end = window
        if start is not None and end is None:
            return params_error(now, "params error: startTime and endTime must be passed together")
        hi = min(now, end if end is not None else now)
        lo = max(start or 0, inst.launch_ms)
        stamps = last_present(self.market, "bybit", inst.coin, hi, limit, lo, now)
        rows, records = [], []
        for s in reversed(stamps):  # newest first
            rate_str = stripped(self.market.funding_rate("bybit", inst.coin, s), 6)
            rows.append({"symbol": inst.symbol, "fundingRate": rate_str, "fundingRateTimestamp": str(s)})
            records.append({"venue": VENUE, "kind": "funding_history", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": s, "served_ns": time.time_ns(),
                            "rate": float(rate_str),
                            "interval_minutes": interval_minutes_of(self.market, "bybit", inst.coin, s)})
        self.ctx.recorder.write(records)
        return envelope({"category": q["category"], "list": rows}, now)

    async def mark_price_kline(self, request: web.Request) -> web.Response:
        """GET /v5/market/mark-price-kline: [startTime, open, high, low, close] per interval, newest first."""
        q = request.query
        now = self.ctx.now_ms()
        if q.get("category") not in ("linear", "inverse"):
            return params_error(now, "params error: category is invalid")
        inst = self.lookup(q.get("symbol"), now)
        if inst is None:
            return params_error(now, "params error: symbol invalid")
        step = KLINE_INTERVALS.get(q.get("interval", ""))
        if step is None:
            return params_error(now, "params error: interval invalid")
        window = paging(q, 1000, 200, "start", "end")
        if window is None:
            return params_error(now, "params error: limit invalid")
        limit, start, end = window
        t = (min(now, end if end is not None else now) // step) * step
        lo = max(start or 0, inst.launch_ms)
        tick = float(inst.spec.tick)

        def px(x: float) -> str:
            return fixed(round(x / tick) * tick, inst.spec.price_scale)

        rows, records = [], []
        while t >= lo and len(rows) < limit:
            o = px(self.market.mark_price(inst.coin, t, "bybit"))
            c = px(self.market.mark_price(inst.coin, min(now, t + step - 1), "bybit"))
            mid = px(self.market.mark_price(inst.coin, t + step // 2, "bybit"))
            hi_, lo_ = max(o, c, mid, key=float), min(o, c, mid, key=float)
            rows.append([str(t), o, hi_, lo_, c])
            records.append({"venue": VENUE, "kind": "mark_price_kline", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": t, "served_ns": time.time_ns(), "open": float(o),
                            "close": float(c), "interval": q["interval"]})
            t -= step
        self.ctx.recorder.write(records)
        return envelope({"symbol": inst.symbol, "category": q["category"], "list": rows}, now)
