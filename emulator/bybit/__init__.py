"""Bybit v5 (category=linear) REST emulator: instruments-info (paginated), tickers and
open-interest, which is what ccxt's bybit calls for markets, funding rates and open interest.

Open interest as Bybit serves it since 2026-06-11 (README, units registry): `openInterest` /
`openInterestValue` count both sides, `singleOpenInterest` / `singleOpenInterestValue` one side;
history rows of every date carry both figures (as the docs example of 2026-06-09 shows for rows
dated before the change). `tests/unit/test_emulator_shapes.py` keeps the answers in the shape
of the recorded real ones (`tests/fixtures/real/bybit`).

Every answer is HTTP 200 with the v5 envelope {"retCode","retMsg","result","retExtInfo","time"};
errors are a non-zero retCode (10001 for bad parameters), as on the real API.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from emulator import history
from emulator.common import (
    VenueContext,
    decimals,
    fixed,
    json_response,
    logging_middleware,
    quarterly_expiry_ms,
    stripped,
)
from emulator.market import DAY, HOUR, LISTINGS, MIN

VENUE = "BYBIT"
_YEAR_MS = 365 * DAY
_OI_INTERVALS = {"5min": 5 * MIN, "15min": 15 * MIN, "30min": 30 * MIN, "1h": HOUR, "4h": 4 * HOUR, "1d": DAY}
_CATEGORIES = ("spot", "linear", "inverse", "option")


@dataclass(frozen=True, slots=True)
class Spec:
    """Static contract data (close to the real Bybit values)."""

    price_scale: int
    tick: str
    qty_step: str
    max_qty: str
    max_mkt_qty: str
    max_leverage: str
    launch_ms: int


_SYMBOL_IDS = {"BTC": 5, "ETH": 6, "SOL": 171, "XRP": 24, "DOGE": 45, "HYPE": 603}  # symbolId (int, like the venue's)

_SPECS: dict[str, Spec] = {
    "BTC": Spec(2, "0.10", "0.001", "1190.000", "119.000", "100.00", 1585526400000),
    "ETH": Spec(2, "0.01", "0.01", "7240.00", "724.00", "100.00", 1615766400000),
    "SOL": Spec(3, "0.010", "0.1", "79770.0", "7977.0", "100.00", 1635638400000),
    "XRP": Spec(4, "0.0001", "1", "1798000", "179800", "75.00", 1637280000000),
    "DOGE": Spec(5, "0.00001", "1", "19375000", "1937500", "75.00", 1633392000000),
    "HYPE": Spec(3, "0.001", "0.01", "94830.00", "9483.00", "50.00", 1733356800000),
}


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    coin: str
    contract_type: str  # "LinearPerpetual" | "LinearFutures"
    delivery_ms: int  # 0 for perpetuals
    launch_ms: int
    spec: Spec

    @property
    def perpetual(self) -> bool:
        return self.contract_type == "LinearPerpetual"


def instruments(t_ms: int) -> list[Instrument]:
    """USDT perpetuals of the listed coins plus the BTC quarterly (symbol rolls with time)."""
    out = [Instrument(f"{c}USDT", c, "LinearPerpetual", 0, _SPECS[c].launch_ms, _SPECS[c]) for c in LISTINGS["bybit"]]
    expiry = quarterly_expiry_ms(t_ms)
    tag = datetime.fromtimestamp(expiry / 1000, UTC).strftime("%d%b%y").upper()  # 27MAR26
    out.append(Instrument(f"BTCUSDT-{tag}", "BTC", "LinearFutures", expiry, expiry - 180 * DAY, _SPECS["BTC"]))
    return out


def prelaunch_info(now: int) -> dict:
    """A pre-market perpetual (status PreLaunch), in the shape of the docs' example: only
    instruments-info with status=PreLaunch lists it (ccxt asks; Nautilus does not), with
    `isPreListing` and its auction phases. It has no tickers: nobody collects it."""
    start = now - now % DAY - DAY
    phases = [("CallAuction", start, start + 50 * MIN), ("CallAuctionNoCancel", start + 50 * MIN, start + 55 * MIN),
              ("CrossMatching", start + 55 * MIN, start + 60 * MIN), ("ContinuousTrading", start + 60 * MIN, None)]
    return {
        "symbol": "PRELAUNCHUSDT", "symbolId": 9001, "contractType": "LinearPerpetual", "status": "PreLaunch",
        "baseCoin": "PRELAUNCH", "quoteCoin": "USDT", "launchTime": str(start - DAY), "deliveryTime": "0",
        "deliveryFeeRate": "", "priceScale": "4",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "5.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.0001", "maxPrice": "1999.9998", "tickSize": "0.0001"},
        "lotSizeFilter": {"maxOrderQty": "70000", "minOrderQty": "1", "qtyStep": "1", "postOnlyMaxOrderQty": "70000",
                          "maxMktOrderQty": "14000", "minNotionalValue": "5"},
        "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "none",
        "upperFundingRate": "0.05", "lowerFundingRate": "-0.05", "isPreListing": True,
        "preListingInfo": {
            "curAuctionPhase": "ContinuousTrading",
            "phases": [{"phase": p, "startTime": str(a), "endTime": "" if b is None else str(b)} for p, a, b in phases],
            "auctionFeeInfo": {"auctionFeeRate": "0", "takerFeeRate": "0.001", "makerFeeRate": "0.0004"},
        },
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
        "symbolType": "",
    }


def _envelope(result: dict, now: int, code: int = 0, msg: str = "OK") -> web.Response:
    return json_response({"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now})


def _params_error(now: int, msg: str) -> web.Response:
    # The message real Bybit gives for an unknown symbol is "params error: symbol invalid".
    return _envelope({}, now, 10001, msg)


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


def create_app(ctx: VenueContext) -> web.Application:
    """The Bybit v5 application (mount at the server root)."""
    market = ctx.market

    def instrument_info(inst: Instrument, now: int) -> dict:
        s = inst.spec
        interval_min = market.funding_interval_hours("bybit", inst.coin, now) * 60 if inst.perpetual else 0
        return {
            "symbol": inst.symbol,
            "symbolId": _SYMBOL_IDS.get(inst.coin, 0) + (0 if inst.perpetual else 1000),
            "contractType": inst.contract_type,
            "status": "Trading",
            "baseCoin": inst.coin,
            "quoteCoin": "USDT",
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
            "settleCoin": "USDT",
            "copyTrading": "both" if inst.perpetual else "none",
            "upperFundingRate": "0.005" if inst.perpetual else "",
            "lowerFundingRate": "-0.005" if inst.perpetual else "",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "symbolType": "",
            "displayName": "",
        }

    async def instruments_info(request: web.Request) -> web.Response:
        now = ctx.now_ms()
        q = request.query
        category = q.get("category", "")
        if category not in _CATEGORIES:
            return _envelope({}, now, 10001, "params error: category is invalid")
        limit = _int_param(request, "limit", 500, 1, 1000)
        if limit is None:
            return _params_error(now, "params error: limit invalid")
        # Only linear is emulated; the other categories answer an empty, well-formed list
        # (so ccxt's default fetchMarkets types work too). Without a status only Trading
        # contracts are listed, like the venue; status=PreLaunch (ccxt asks) lists the pre-market one.
        rows = instruments(now) if category == "linear" else []
        if q.get("status") == "PreLaunch" and category == "linear" and not q.get("cursor"):
            listed = [prelaunch_info(now)]
            listed = [r for r in listed if r["symbol"] == q.get("symbol", r["symbol"]) and r["baseCoin"] == q.get("baseCoin", r["baseCoin"])]
            return _envelope({"category": category, "list": listed, "nextPageCursor": ""}, now)
        if q.get("status") and q["status"] != "Trading":
            rows = []
        if q.get("symbol"):
            rows = [r for r in rows if r.symbol == q["symbol"]]
        if q.get("baseCoin"):
            rows = [r for r in rows if r.coin == q["baseCoin"]]
        offset = _uncursor(q["cursor"]) if q.get("cursor") else 0
        if offset is None:
            return _params_error(now, "params error: cursor invalid")
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        ctx.recorder.write([
            {
                "venue": VENUE, "kind": "instrument", "endpoint": request.path, "coin": i.coin,
                "raw_symbol": i.symbol, "ts_ms": now, "served_ns": time.time_ns(),
                "contract_type": i.contract_type, "status": "Trading", "active": True,
                "interval_minutes": market.funding_interval_hours("bybit", i.coin, now) * 60 if i.perpetual else None,
                "tick_size": float(i.spec.tick), "lot_size": float(i.spec.qty_step),
                "launch_ms": i.launch_ms, "delivery_ms": i.delivery_ms or None,
            }
            for i in page
        ])
        return _envelope({
            "category": category,
            "list": [instrument_info(i, now) for i in page],
            "nextPageCursor": _cursor(offset + limit) if more else "",
        }, now)

    def ticker(inst: Instrument, now: int) -> tuple[dict, list[dict]]:
        s = inst.spec
        tick = float(s.tick)
        qty_dp = decimals(s.qty_step)

        def px(x: float) -> str:
            return fixed(round(x / tick) * tick, s.price_scale)

        premium = 1.0 if inst.perpetual else 1.0 + 0.05 * max(0, inst.delivery_ms - now) / _YEAR_MS
        mark = px(market.mark_price(inst.coin, now, "bybit") * premium)
        index = px(market.index_price(inst.coin, now))
        last = px(market.last_price(inst.coin, now, "bybit") * premium)
        hist = [market.index_price(inst.coin, now - h * HOUR) * premium for h in range(25)]
        # openInterest(Value) count both sides (docs: "(both sides)"); single* added 2026-06-11 are one
        # side. The model's figure is two-sided, made exactly twice the one side served.
        oi = market.open_interest(inst.coin, now, "bybit") * (1.0 if inst.perpetual else 0.03)
        single_str = fixed(oi / 2, qty_dp)
        oi_str = fixed(2 * float(single_str), qty_dp)
        oiv_str = fixed(float(oi_str) * float(mark), 2)
        single_v_str = fixed(float(single_str) * float(mark), 2)
        vol = market.volume_24h(inst.coin, now, "bybit") * (1.0 if inst.perpetual else 0.02)
        if inst.perpetual:
            iv_h = market.funding_interval_hours("bybit", inst.coin, now)
            next_ms = market.next_funding_ms("bybit", inst.coin, now)
            rate: float | None = market.funding_rate("bybit", inst.coin, next_ms)
            rate_str, next_str, iv_str = stripped(rate, 6), str(next_ms), str(iv_h)
        else:  # futures are in the list too, without funding (ccxt then parses NaN/None)
            iv_h, next_ms, rate, rate_str, next_str, iv_str = 0, 0, None, "", "0", ""
        row = {
            "symbol": inst.symbol,
            "lastPrice": last, "indexPrice": index, "markPrice": mark,
            "prevPrice24h": px(hist[24]), "price24hPcnt": fixed(float(last) / float(px(hist[24])) - 1, 6),
            "highPrice24h": px(max(hist + [float(last)])), "lowPrice24h": px(min(hist + [float(last)])),
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

    async def tickers(request: web.Request) -> web.Response:
        now = ctx.now_ms()
        q = request.query
        category = q.get("category", "")
        if category not in _CATEGORIES:
            return _envelope({}, now, 10001, "params error: category is invalid")
        rows = instruments(now) if category == "linear" else []
        if q.get("symbol"):
            rows = [r for r in rows if r.symbol == q["symbol"]]
            if not rows:
                return _params_error(now, "params error: symbol invalid")
        if q.get("baseCoin"):
            rows = [r for r in rows if r.coin == q["baseCoin"]]
        built = [ticker(i, now) for i in rows]
        ctx.recorder.write([rec for _, recs in built for rec in recs])
        return _envelope({"category": category, "list": [row for row, _ in built]}, now)

    async def open_interest(request: web.Request) -> web.Response:
        """Open interest sampled at interval boundaries, newest first. The newest row is the
        latest boundary <= now (a closed bucket); values are the model at that instant."""
        now = ctx.now_ms()
        q = request.query
        if q.get("category") != "linear":
            return _envelope({"symbol": q.get("symbol", ""), "category": q.get("category", ""), "list": [],
                              "nextPageCursor": ""}, now)
        inst = next((i for i in instruments(now) if i.symbol == q.get("symbol")), None)
        if inst is None:
            return _params_error(now, "params error: symbol invalid")
        step = _OI_INTERVALS.get(q.get("intervalTime", ""))
        if step is None:
            return _params_error(now, "params error: intervalTime invalid")
        limit = _int_param(request, "limit", 50, 1, 200)
        start = _int_param(request, "startTime", 0, 0, 1 << 62)
        end = _int_param(request, "endTime", now, 0, 1 << 62)
        if limit is None or start is None or end is None:
            return _params_error(now, "params error: limit/startTime/endTime invalid")
        first = (min(end, now) // step) * step
        history_query = any(q.get(k) for k in ("startTime", "endTime", "cursor"))
        if q.get("cursor"):
            resumed = _uncursor(q["cursor"])
            if resumed is None:
                return _params_error(now, "params error: cursor invalid")
            first = min(first, resumed)
        floor = max(start, inst.launch_ms)
        stamps: list[int] = []
        resume = first
        while resume >= floor and len(stamps) < limit:
            if not history.oi_hole(market, "bybit", inst.coin, resume, now):  # the venue's own holes
                stamps.append(resume)
            resume -= step
        more = resume >= floor  # rows left: the cursor resumes there
        scale = 1.0 if inst.perpetual else 0.03
        qty_dp = decimals(inst.spec.qty_step)
        rows, records = [], []
        for t in stamps:
            oi = round(market.open_interest(inst.coin, t, "bybit") * scale, qty_dp)
            rows.append({"openInterest": fixed(oi, 8), "singleOpenInterest": fixed(oi / 2, 8), "timestamp": str(t)})
            records.append({"venue": VENUE, "kind": "open_interest", "endpoint": request.path, "coin": inst.coin,
                            "raw_symbol": inst.symbol, "ts_ms": t, "served_ns": time.time_ns(),
                            "open_interest": float(fixed(oi, 8)), "interval_time": q["intervalTime"]})
            if history_query:  # a windowed or cursor request: a history row
                records[-1].update(kind="open_interest_history", single_open_interest=float(fixed(oi / 2, 8)))
        ctx.recorder.write(records)
        return _envelope({"symbol": inst.symbol, "category": "linear", "list": rows,
                          "nextPageCursor": _cursor(resume) if more else ""}, now)

    async def server_time(request: web.Request) -> web.Response:
        ns = ctx.clock_ns()
        return _envelope({"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}, ns // 1_000_000)

    app = web.Application(middlewares=[logging_middleware("bybit")])
    app.add_routes([
        web.get("/v5/market/instruments-info", instruments_info),
        web.get("/v5/market/tickers", tickers),
        web.get("/v5/market/open-interest", open_interest),
        web.get("/v5/market/time", server_time),
    ])
    history.install_bybit(app, ctx)  # funding/history, mark-price-kline, /_emulator/stats
    from emulator.bybit import ws as ws_bybit  # noqa: PLC0415 - split follows

    ws_bybit.register(app, ctx)  # liquidation WebSocket streams + /_emulator/ fault controls
    return app


from emulator.bybit.faults import FAULTS  # noqa: E402 - split follows
from emulator.bybit.limits import LIMITS  # noqa: E402
from emulator.bybit.ws import REPLAY  # noqa: E402
from emulator.venue import EmulatedVenue  # noqa: E402

EMULATED = EmulatedVenue("bybit", create_app, FAULTS, LIMITS, REPLAY)
