"""Owns Binance USDT-M's history endpoints, with the real venue's contract:

- `GET /futures/data/openInterestHist`: symbol, period (5m 15m 30m 1h 2h 4h 6h 12h 1d; anything
  else -> 400 -1130), limit (default 30, max 500), startTime/endTime; rows oldest first
  `{"symbol","sumOpenInterest","sumOpenInterestValue","timestamp"}`. Only the last **30 days**
  are kept: a startTime older than that is refused (400 -1130 "parameter 'startTime' is
  invalid.", what ccxt's maintainers report the live venue answers); an endTime-only window
  reaching back further is clipped to the 30 days.
- `GET /fapi/v1/fundingRate`: symbol, startTime, endTime, limit (default 100, max 1000); rows
  oldest first `{"symbol","fundingRate","fundingTime","markPrice"}`; with startTime the first
  `limit` rows from it, otherwise the last `limit` rows up to endTime (or now).

Holes, settlements and paging are `emulator/history.py`'s.
"""

from __future__ import annotations

import time

from aiohttp import web

from emulator.binance.answers import error, invalid_symbol, missing
from emulator.binance.instruments import VENUE, Instrument, by_symbol, instruments
from emulator.common import VenueContext, fixed, json_response
from emulator.history import funding_hole, interval_minutes_of, last_present, oi_hole, paging, settlements
from emulator.market import DAY, HOUR, MIN

OI_PERIODS: dict[str, int] = {
    "5m": 5 * MIN, "15m": 15 * MIN, "30m": 30 * MIN, "1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR,
    "6h": 6 * HOUR, "12h": 12 * HOUR, "1d": DAY,
}
OI_RETENTION_MS = 30 * DAY


class BinanceHistory:
    """The history handlers over one venue context."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.market = ctx.market

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/futures/data/openInterestHist", self.open_interest_hist),
            web.get("/fapi/v1/fundingRate", self.funding_rate),
        ]

    def lookup(self, symbol: str | None, now: int) -> Instrument | None:
        """The servable perpetual of that symbol (history exists for perpetuals only)."""
        inst = by_symbol(self.market, now).get(symbol or "")
        return inst if inst is not None and inst.servable and inst.perpetual else None

    async def open_interest_hist(self, request: web.Request) -> web.Response:
        """GET /futures/data/openInterestHist: OI per period, oldest first, last 30 days only."""
        ctx, market = self.ctx, self.market
        q = request.query
        now = ctx.now_ms()
        if not q.get("symbol"):
            return missing("symbol")
        inst = self.lookup(q["symbol"], now)
        if inst is None:
            return invalid_symbol()
        step = OI_PERIODS.get(q.get("period", ""))
        if step is None:
            return error(-1130, "Data sent for parameter 'period' is not valid.")
        window = paging(q, 500, 30)
        if window is None:
            return error(-1130, "Data sent for parameter 'limit' is not valid.")
        limit, start, end = window
        floor = now - OI_RETENTION_MS
        if start is not None and start < floor:
            return error(-1130, "parameter 'startTime' is invalid.")
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

    async def funding_rate(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/fundingRate: settled rates, oldest first, of one perpetual or all of them."""
        ctx, market = self.ctx, self.market
        q = request.query
        now = ctx.now_ms()
        window = paging(q, 1000, 100)
        if window is None:
            return error(-1130, "Data sent for parameter 'limit' is not valid.")
        limit, start, end = window
        if q.get("symbol"):
            inst = self.lookup(q["symbol"], now)
            if inst is None:
                return invalid_symbol()
            insts = [inst]
        else:
            insts = [i for i in instruments(market, now) if i.servable and i.perpetual]
        hi = min(now, end if end is not None else now)
        pairs: list[tuple[int, Instrument]] = []
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
