"""Owns Binance USDT-M's (fapi) current-value REST endpoints: the ones ccxt's binanceusdm calls for
markets, open interest, funding rates and funding intervals, plus ping and time. Every value
served is written to the ground truth.

Errors are HTTP 400 `{"code": -1121, "msg": "Invalid symbol."}` and the like (`answers.py`).
"""

from __future__ import annotations

import time

from aiohttp import web

from emulator.binance.answers import invalid_symbol, missing
from emulator.binance.instruments import VENUE, Instrument, by_symbol, instruments, symbol_info
from emulator.common import VenueContext, decimals, fixed, json_response
from emulator.market import MIN

_YEAR_MS = 365 * 24 * 3600 * 1000


class BinanceRest:
    """The fapi market-data handlers over one venue context (model, recorder, clock)."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.market = ctx.market

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/fapi/v1/exchangeInfo", self.exchange_info),
            web.get("/fapi/v1/openInterest", self.open_interest),
            web.get("/fapi/v1/premiumIndex", self.premium_index),
            web.get("/fapi/v1/fundingInfo", self.funding_info),
            web.get("/fapi/v1/ping", self.ping),
            web.get("/fapi/v1/time", self.server_time),
        ]

    # -- helpers --------------------------------------------------------------------------

    def prices(self, inst: Instrument, t_ms: int) -> tuple[str, str, str]:
        """(markPrice, indexPrice, estimatedSettlePrice) strings; a quarterly trades at a
        small contango to the index that decays to zero at delivery."""
        market = self.market
        index = market.index_price(inst.coin, t_ms)
        mark = market.mark_price(inst.coin, t_ms, "binance")
        if not inst.perpetual:
            mark *= 1.0 + 0.05 * max(0, inst.delivery_ms - t_ms) / _YEAR_MS
        tick = float(inst.spec.tick)
        settle = market.index_price(inst.coin, t_ms - 5 * MIN)
        return fixed(round(mark / tick) * tick, 8), fixed(index, 8), fixed(settle, 8)

    def lookup(self, symbol: str, t_ms: int) -> Instrument | None:
        """The servable instrument of that symbol (a not-yet-trading one is not)."""
        inst = by_symbol(self.market, t_ms).get(symbol)
        return inst if inst is not None and inst.servable else None

    def premium_row(self, inst: Instrument, now: int) -> tuple[dict, dict]:
        """One premiumIndex row and its ground-truth record."""
        market = self.market
        mark, index, settle = self.prices(inst, now)
        if inst.perpetual:
            next_ms = market.next_funding_ms("binance", inst.coin, now)
            rate: float | None = market.funding_rate("binance", inst.coin, next_ms)
            interval_min: int | None = market.funding_interval_hours("binance", inst.coin, now) * 60
            rate_str, interest, next_out = fixed(rate, 8), "0.00010000", next_ms
        else:  # delivery contracts carry no funding: empty strings and 0, like the real API
            rate, interval_min, rate_str, interest, next_out = None, None, "", "", 0
        row = {
            "symbol": inst.symbol, "markPrice": mark, "indexPrice": index, "estimatedSettlePrice": settle,
            "lastFundingRate": rate_str, "interestRate": interest, "nextFundingTime": next_out, "time": now,
        }
        record = {
            "venue": VENUE, "kind": "funding_rate", "endpoint": "/fapi/v1/premiumIndex", "coin": inst.coin,
            "raw_symbol": inst.symbol, "ts_ms": now, "served_ns": time.time_ns(),
            "rate": rate, "next_funding_ms": next_out or None, "interval_minutes": interval_min,
            "mark_price": float(mark), "index_price": float(index),
        }
        return row, record

    # -- handlers -------------------------------------------------------------------------

    async def exchange_info(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/exchangeInfo: every listed contract, its filters and the rate limits."""
        ctx, market = self.ctx, self.market
        now = ctx.now_ms()
        insts = instruments(self.market, now)
        ctx.recorder.write([
            {
                "venue": VENUE, "kind": "instrument", "endpoint": request.path, "coin": i.coin,
                "raw_symbol": i.symbol, "ts_ms": now, "served_ns": time.time_ns(),
                "contract_type": i.contract_type, "status": i.status, "active": i.status == "TRADING",
                "interval_minutes": market.funding_interval_hours("binance", i.coin, now) * 60 if i.perpetual else None,
                "tick_size": float(i.spec.tick), "lot_size": float(i.spec.step),
                "onboard_ms": i.onboard_ms, "delivery_ms": i.delivery_ms,
            }
            for i in insts
        ])
        return json_response({
            "timezone": "UTC",
            "serverTime": now,
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
                {"asset": "USDC", "marginAvailable": True, "autoAssetExchange": "-10000"},
                {"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "-0.10000000"},
            ],
            "symbols": [symbol_info(i) for i in insts],
        })

    async def open_interest(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/openInterest?symbol=S: the contract's open interest now (base units)."""
        ctx = self.ctx
        symbol = request.query.get("symbol")
        if not symbol:
            return missing("symbol")
        now = ctx.now_ms()
        inst = self.lookup(symbol, now)
        if inst is None:
            return invalid_symbol()
        oi = self.market.open_interest(inst.coin, now, "binance")
        if not inst.perpetual:
            oi *= 0.03  # quarterlies hold a few percent of the perpetual's OI
        oi_str = fixed(oi, decimals(inst.spec.step))
        mark_str = self.prices(inst, now)[0]
        ctx.recorder.write([{
            "venue": VENUE, "kind": "open_interest", "endpoint": request.path, "coin": inst.coin,
            "raw_symbol": inst.symbol, "ts_ms": now, "served_ns": time.time_ns(),
            "open_interest": float(oi_str), "open_interest_value": float(oi_str) * float(mark_str),
            "mark_price": float(mark_str),
        }])
        return json_response({"symbol": inst.symbol, "openInterest": oi_str, "time": now})

    async def premium_index(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/premiumIndex[?symbol=S]: mark/index price and the current funding rate, of
        one contract (an object) or of every servable one (a list)."""
        ctx = self.ctx
        now = ctx.now_ms()
        symbol = request.query.get("symbol")
        if symbol:
            inst = self.lookup(symbol, now)
            if inst is None:
                return invalid_symbol()
            row, record = self.premium_row(inst, now)
            ctx.recorder.write([record])
            return json_response(row)
        pairs = [self.premium_row(i, now) for i in instruments(self.market, now) if i.servable]
        ctx.recorder.write([rec for _, rec in pairs])
        return json_response([row for row, _ in pairs])

    async def funding_info(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/fundingInfo: only symbols whose interval (or cap/floor) was adjusted are
        listed: absent = 8h."""
        ctx, market = self.ctx, self.market
        now = ctx.now_ms()
        rows, records = [], []
        for inst in instruments(self.market, now):
            if not (inst.perpetual and inst.servable):
                continue
            hours = market.funding_interval_hours("binance", inst.coin, now)
            if hours == 8:
                continue
            rows.append({"symbol": inst.symbol, "adjustedFundingRateCap": "0.02000000",
                         "adjustedFundingRateFloor": "-0.02000000", "fundingIntervalHours": hours,
                         "disclaimer": False})
            records.append({"venue": VENUE, "kind": "instrument", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": None, "served_ns": time.time_ns(),
                            "interval_minutes": hours * 60})
        ctx.recorder.write(records)
        return json_response(rows)

    async def ping(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/ping: {}."""
        return json_response({})

    async def server_time(self, request: web.Request) -> web.Response:
        """GET /fapi/v1/time: the venue's clock."""
        return json_response({"serverTime": self.ctx.now_ms()})
