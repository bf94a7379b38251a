"""Owns Bybit v5's (category=linear) current-value REST endpoints: instruments-info (paginated),
tickers, open-interest (current and history) and time, which is what ccxt's bybit calls for
markets, funding rates and open interest. Every value served is written to the ground truth.

Open interest as Bybit serves it since 2026-06-11 (README, units registry): `openInterest` /
`openInterestValue` count both sides, `singleOpenInterest` / `singleOpenInterestValue` one side;
history rows of every date carry both figures (as the docs example of 2026-06-09 shows for rows
dated before the change). `tests/integration/test_emulator_shapes.py` keeps the answers in the shape
of the recorded real ones (`tests/fixtures/real/bybit`).
"""

from __future__ import annotations

import base64
import time

from aiohttp import web

from emulator.bybit.answers import envelope, params_error
from emulator.bybit.instruments import VENUE, Instrument, by_symbol, instruments, prelaunch_info
from emulator.common import VenueContext, decimals, fixed, stripped
from emulator.history import oi_hole
from emulator.market import DAY, HOUR, MIN

_YEAR_MS = 365 * DAY
_OI_INTERVALS = {"5min": 5 * MIN, "15min": 15 * MIN, "30min": 30 * MIN, "1h": HOUR, "4h": 4 * HOUR, "1d": DAY}
_CATEGORIES = ("spot", "linear", "inverse", "option")


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o={offset}".encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(raw.removeprefix("o="))
    except ValueError:
        return None


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if lo <= value <= hi else None


class BybitRest:
    """The v5 market handlers over one venue context (model, recorder, clock)."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.market = ctx.market

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v5/market/instruments-info", self.instruments_info),
            web.get("/v5/market/tickers", self.tickers),
            web.get("/v5/market/open-interest", self.open_interest),
            web.get("/v5/market/time", self.server_time),
        ]

    def instrument_info(self, inst: Instrument, now: int) -> dict:
        """The instruments-info item of a contract."""
        s = inst.spec
        interval_min = self.market.funding_interval_hours("bybit", inst.coin, now) * 60 if inst.perpetual else 0
        return {
            "symbol": inst.symbol,
            "symbolId": inst.symbol_id,
            "contractType": inst.contract_type,
            "status": "Trading",
            "baseCoin": inst.coin,
            "quoteCoin": inst.quote,
            "launchTime": str(inst.launch_ms),
            "deliveryTime": str(inst.delivery_ms),
            "deliveryFeeRate": "" if inst.perpetual else "0.0005",
            "priceScale": str(s.price_scale),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": s.max_leverage, "leverageStep": "0.01"},
            "priceFilter": {"minPrice": s.tick, "maxPrice": "1999999.80", "tickSize": s.tick},
            "lotSizeFilter": {
                "maxOrderQty": s.max_qty, "minOrderQty": s.qty_step, "qtyStep": s.qty_step,
                "postOnlyMaxOrderQty": s.max_qty, "maxMktOrderQty": s.max_mkt_qty, "minNotionalValue": "5",
            },
            "unifiedMarginTrade": True,
            "fundingInterval": interval_min,
            "settleCoin": inst.quote,
            "copyTrading": "both" if inst.perpetual else "none",
            "upperFundingRate": "0.005" if inst.perpetual else "",
            "lowerFundingRate": "-0.005" if inst.perpetual else "",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "symbolType": "",
            "displayName": "",
        }

    async def instruments_info(self, request: web.Request) -> web.Response:
        """GET /v5/market/instruments-info: the category's contracts, paginated by cursor; status=PreLaunch
        lists the pre-market one."""
        now = self.ctx.now_ms()
        q = request.query
        category = q.get("category", "")
        if category not in _CATEGORIES:
            return envelope({}, now, 10001, "params error: category is invalid")
        limit = _int_param(request, "limit", 500, 1, 1000)
        if limit is None:
            return params_error(now, "params error: limit invalid")
        # Only linear is emulated; the other categories answer an empty, well-formed list
        # (so ccxt's default fetchMarkets types work too). Without a status only Trading
        # contracts are listed, like the venue; status=PreLaunch (ccxt asks) lists the pre-market one.
        rows = instruments(self.market, now) if category == "linear" else []
        if q.get("status") == "PreLaunch" and category == "linear" and not q.get("cursor"):
            listed = [prelaunch_info(now)]
            listed = [r for r in listed if r["symbol"] == q.get("symbol", r["symbol"]) and r["baseCoin"] == q.get("baseCoin", r["baseCoin"])]
            return envelope({"category": category, "list": listed, "nextPageCursor": ""}, now)
        if q.get("status") and q["status"] != "Trading":
            rows = []
        if q.get("symbol"):
            rows = [r for r in rows if r.symbol == q["symbol"]]
        if q.get("baseCoin"):
            rows = [r for r in rows if r.coin == q["baseCoin"]]
        offset = _uncursor(q["cursor"]) if q.get("cursor") else 0
        if offset is None:
            return params_error(now, "params error: cursor invalid")
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        self.ctx.recorder.write([
            {
                "venue": VENUE, "kind": "instrument", "endpoint": request.path, "coin": i.coin,
                "raw_symbol": i.symbol, "ts_ms": now, "served_ns": time.time_ns(),
                "contract_type": i.contract_type, "status": "Trading", "active": True,
                "interval_minutes": self.market.funding_interval_hours("bybit", i.coin, now) * 60 if i.perpetual else None,
                "tick_size": float(i.spec.tick), "lot_size": float(i.spec.qty_step),
                "launch_ms": i.launch_ms, "delivery_ms": i.delivery_ms or None,
            }
            for i in page
        ])
        return envelope({
            "category": category,
            "list": [self.instrument_info(i, now) for i in page],
            "nextPageCursor": _cursor(offset + limit) if more else "",
        }, now)

    def ticker(self, inst: Instrument, now: int) -> tuple[dict, list[dict]]:
        """One tickers row and its ground-truth records (open interest, funding)."""
        s = inst.spec
        tick = float(s.tick)
        qty_dp = decimals(s.qty_step)

        def px(x: float) -> str:
            return fixed(round(x / tick) * tick, s.price_scale)

        premium = 1.0 if inst.perpetual else 1.0 + 0.05 * max(0, inst.delivery_ms - now) / _YEAR_MS
        mark = px(self.market.mark_price(inst.coin, now, "bybit") * premium)
        index = px(self.market.index_price(inst.coin, now))
        last = px(self.market.last_price(inst.coin, now, "bybit") * premium)
        # the last 24 hours sampled every 4 hours (plus an hour ago): high, low and the previous prices
        hist = {h: self.market.index_price(inst.coin, now - h * HOUR) * premium for h in (0, 1, 4, 8, 12, 16, 20, 24)}
        # openInterest(Value) count both sides (docs: "(both sides)"); single* added 2026-06-11 are one
        # side. The model's figure is two-sided, made exactly twice the one side served.
        oi = self.market.open_interest(inst.coin, now, "bybit") * inst.oi_share
        single_str = fixed(oi / 2, qty_dp)
        oi_str = fixed(2 * float(single_str), qty_dp)
        oiv_str = fixed(float(oi_str) * float(mark), 2)
        single_v_str = fixed(float(single_str) * float(mark), 2)
        vol = self.market.volume_24h(inst.coin, now, "bybit") * (1.0 if inst.perpetual else 0.02)
        if inst.perpetual:
            iv_h = self.market.funding_interval_hours("bybit", inst.coin, now)
            next_ms = self.market.next_funding_ms("bybit", inst.coin, now)
            rate: float | None = self.market.funding_rate("bybit", inst.coin, next_ms)
            rate_str, next_str, iv_str = stripped(rate, 6), str(next_ms), str(iv_h)
        else:  # futures are in the list too, without funding (ccxt then parses NaN/None)
            iv_h, next_ms, rate, rate_str, next_str, iv_str = 0, 0, None, "", "0", ""
        row = {
            "symbol": inst.symbol,
            "lastPrice": last, "indexPrice": index, "markPrice": mark,
            "prevPrice24h": px(hist[24]), "price24hPcnt": fixed(float(last) / float(px(hist[24])) - 1, 6),
            "highPrice24h": px(max([*hist.values(), float(last)])), "lowPrice24h": px(min([*hist.values(), float(last)])),
            "prevPrice1h": px(hist[1]),
            "openInterest": oi_str, "openInterestValue": oiv_str,
            "singleOpenInterest": single_str, "singleOpenInterestValue": single_v_str,
            "turnover24h": fixed(vol * float(mark), 4), "volume24h": fixed(vol, qty_dp),
            "fundingRate": rate_str, "nextFundingTime": next_str,
            "predictedDeliveryPrice": "", "basisRate": "" if inst.perpetual else fixed(premium - 1, 8),
            "deliveryFeeRate": "" if inst.perpetual else "0.0005", "deliveryTime": str(inst.delivery_ms),
            "ask1Size": fixed(3.0, qty_dp), "bid1Price": px(float(last) - tick), "ask1Price": last,
            "bid1Size": fixed(5.0, qty_dp),
            "basis": "" if inst.perpetual else px(float(mark) - float(index)),
            "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
            "fundingIntervalHour": iv_str, "fundingCap": "0.005" if inst.perpetual else "", "basisRateYear": "",
        }
        base = {"venue": VENUE, "endpoint": "/v5/market/tickers", "coin": inst.coin, "raw_symbol": inst.symbol,
                "ts_ms": now}
        records = [
            {**base, "kind": "open_interest", "served_ns": time.time_ns(), "open_interest": float(oi_str),
             "open_interest_value": float(oiv_str), "single_open_interest": float(single_str),
             "single_open_interest_value": float(single_v_str), "mark_price": float(mark)},
            {**base, "kind": "funding_rate", "served_ns": time.time_ns(), "rate": rate,
             "next_funding_ms": next_ms or None, "interval_minutes": iv_h * 60 or None,
             "mark_price": float(mark), "index_price": float(index)},
        ]
        return row, records

    async def tickers(self, request: web.Request) -> web.Response:
        """GET /v5/market/tickers: prices, open interest (both sides and one side) and funding."""
        now = self.ctx.now_ms()
        q = request.query
        category = q.get("category", "")
        if category not in _CATEGORIES:
            return envelope({}, now, 10001, "params error: category is invalid")
        rows = instruments(self.market, now) if category == "linear" else []
        if q.get("symbol"):
            rows = [r for r in rows if r.symbol == q["symbol"]]
            if not rows:
                return params_error(now, "params error: symbol invalid")
        if q.get("baseCoin"):
            rows = [r for r in rows if r.coin == q["baseCoin"]]
        built = [self.ticker(i, now) for i in rows]
        self.ctx.recorder.write([rec for _, recs in built for rec in recs])
        return envelope({"category": category, "list": [row for row, _ in built]}, now)

    async def open_interest(self, request: web.Request) -> web.Response:
        """GET /v5/market/open-interest: open interest sampled at interval boundaries, newest first
        (a window or cursor makes it a history query). The newest row is the latest boundary <= now
        (a closed bucket); values are the model at that instant; the venue's own holes are skipped."""
        now = self.ctx.now_ms()
        q = request.query
        if q.get("category") != "linear":
            return envelope({"symbol": q.get("symbol", ""), "category": q.get("category", ""), "list": [],
                             "nextPageCursor": ""}, now)
        inst = by_symbol(self.market, now).get(q.get("symbol", ""))
        if inst is None:
            return params_error(now, "params error: symbol invalid")
        step = _OI_INTERVALS.get(q.get("intervalTime", ""))
        if step is None:
            return params_error(now, "params error: intervalTime invalid")
        limit = _int_param(request, "limit", 50, 1, 200)
        start = _int_param(request, "startTime", 0, 0, 1 << 62)
        end = _int_param(request, "endTime", now, 0, 1 << 62)
        if limit is None or start is None or end is None:
            return params_error(now, "params error: limit/startTime/endTime invalid")
        first = (min(end, now) // step) * step
        history_query = any(q.get(k) for k in ("startTime", "endTime", "cursor"))
        if q.get("cursor"):
            resumed = _uncursor(q["cursor"])
            if resumed is None:
                return params_error(now, "params error: cursor invalid")
            first = min(first, resumed)
        floor = max(start, inst.launch_ms)
        stamps: list[int] = []
        resume = first
        while resume >= floor and len(stamps) < limit:
            if not oi_hole(self.market, "bybit", inst.coin, resume, now):  # the venue's own holes
                stamps.append(resume)
            resume -= step
        more = resume >= floor  # rows left: the cursor resumes there
        scale = inst.oi_share
        qty_dp = decimals(inst.spec.qty_step)
        rows, records = [], []
        for t in stamps:
            oi = round(self.market.open_interest(inst.coin, t, "bybit") * scale, qty_dp)
            rows.append({"openInterest": fixed(oi, 8), "singleOpenInterest": fixed(oi / 2, 8), "timestamp": str(t)})
            records.append({"venue": VENUE, "kind": "open_interest", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": t, "served_ns": time.time_ns(),
                            "open_interest": float(fixed(oi, 8)), "interval_time": q["intervalTime"]})
            if history_query:  # a windowed or cursor request: a history row
                records[-1].update(kind="open_interest_history", single_open_interest=float(fixed(oi / 2, 8)))
        self.ctx.recorder.write(records)
        return envelope({"symbol": inst.symbol, "category": "linear", "list": rows,
                         "nextPageCursor": _cursor(resume) if more else ""}, now)

    async def server_time(self, request: web.Request) -> web.Response:
        """GET /v5/market/time: the venue's clock."""
        ns = self.ctx.clock_ns()
        return envelope({"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}, ns // 1_000_000)
