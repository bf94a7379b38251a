"""Binance USDT-M futures (fapi) REST emulator: the endpoints ccxt's binanceusdm calls for
markets, open interest, funding rates and funding intervals.

Shapes follow the real API (emulator/samples/binanceusdm.json): numbers are strings except
timestamps and integer fields; errors are HTTP 400 with {"code": -1121, "msg": "Invalid symbol."}.
"""

from __future__ import annotations

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
)
from emulator.market import LISTINGS, MIN

VENUE = "BINANCE"
_YEAR_MS = 365 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Spec:
    """Static contract data (real Binance values for these symbols, rounded)."""

    tick: str
    step: str
    max_qty: str
    market_max_qty: str
    min_notional: str
    onboard_ms: int
    price_precision: int


_SPECS: dict[str, Spec] = {
    "BTC": Spec("0.10", "0.001", "1000", "120", "100", 1569398400000, 2),
    "ETH": Spec("0.01", "0.001", "10000", "2000", "20", 1569398400000, 2),
    "SOL": Spec("0.0100", "1", "1000000", "5000", "5", 1600128000000, 4),
    "XRP": Spec("0.0001", "0.1", "10000000", "2000000", "5", 1578528000000, 4),
    "DOGE": Spec("0.000010", "1", "50000000", "30000000", "5", 1594684800000, 6),
}


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    coin: str
    quote: str  # quoteAsset == marginAsset for these linear contracts
    contract_type: str  # "PERPETUAL" | "CURRENT_QUARTER"
    status: str  # "TRADING" | "PENDING_TRADING"
    delivery_ms: int  # 4133404800000 (2100-12-25) for perpetuals, like the real API
    onboard_ms: int
    spec: Spec

    @property
    def perpetual(self) -> bool:
        return self.contract_type == "PERPETUAL"

    @property
    def servable(self) -> bool:
        """Whether market-data endpoints answer for it (a not-yet-trading symbol does not)."""
        return self.status == "TRADING"


def instruments(t_ms: int) -> list[Instrument]:
    """USDT perpetuals of the listed coins, the BTC current-quarter contract (its symbol
    rolls with time) and a USDC perpetual not trading yet (exercises `active` filtering)."""
    out = [
        Instrument(f"{c}USDT", c, "USDT", "PERPETUAL", "TRADING", 4133404800000, _SPECS[c].onboard_ms, _SPECS[c])
        for c in LISTINGS["binance"]
    ]
    expiry = quarterly_expiry_ms(t_ms)
    yymmdd = datetime.fromtimestamp(expiry / 1000, UTC).strftime("%y%m%d")
    out.append(
        Instrument(f"BTCUSDT_{yymmdd}", "BTC", "USDT", "CURRENT_QUARTER", "TRADING", expiry, expiry - 180 * 86_400_000,
                   _SPECS["BTC"])
    )
    out.append(Instrument("XRPUSDC", "XRP", "USDC", "PERPETUAL", "PENDING_TRADING", 4133404800000, 1893456000000,
                          _SPECS["XRP"]))
    return out


def _symbol_info(inst: Instrument) -> dict:
    s = inst.spec
    qty_dp = decimals(s.step)
    return {
        "symbol": inst.symbol,
        "pair": f"{inst.coin}{inst.quote}",
        "contractType": inst.contract_type,
        "deliveryDate": inst.delivery_ms,
        "onboardDate": inst.onboard_ms,
        "status": inst.status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": inst.coin,
        "quoteAsset": inst.quote,
        "marginAsset": inst.quote,
        "pricePrecision": s.price_precision,
        "quantityPrecision": qty_dp,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["PoW"] if inst.coin == "BTC" else ["Layer-1"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": s.tick, "maxPrice": "4529764", "tickSize": s.tick},
            {"filterType": "LOT_SIZE", "stepSize": s.step, "maxQty": s.max_qty, "minQty": s.step},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": s.step, "maxQty": s.market_max_qty, "minQty": s.step},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": s.min_notional},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }


def _error(code: int, msg: str) -> web.Response:
    return json_response({"code": code, "msg": msg}, status=400)


def _invalid_symbol() -> web.Response:
    return _error(-1121, "Invalid symbol.")


def _missing(param: str) -> web.Response:
    return _error(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def create_app(ctx: VenueContext) -> web.Application:
    """The Binance fapi application (mount at the server root)."""
    market = ctx.market

    def prices(inst: Instrument, t_ms: int) -> tuple[str, str, str]:
        """(markPrice, indexPrice, estimatedSettlePrice) strings; a quarterly trades at a
        small contango to the index that decays to zero at delivery."""
        index = market.index_price(inst.coin, t_ms)
        mark = market.mark_price(inst.coin, t_ms, "binance")
        if not inst.perpetual:
            mark *= 1.0 + 0.05 * max(0, inst.delivery_ms - t_ms) / _YEAR_MS
        tick = float(inst.spec.tick)
        settle = market.index_price(inst.coin, t_ms - 5 * MIN)
        return fixed(round(mark / tick) * tick, 8), fixed(index, 8), fixed(settle, 8)

    def lookup(symbol: str, t_ms: int) -> Instrument | None:
        for inst in instruments(t_ms):
            if inst.symbol == symbol and inst.servable:
                return inst
        return None

    async def exchange_info(request: web.Request) -> web.Response:
        now = ctx.now_ms()
        insts = instruments(now)
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
            "symbols": [_symbol_info(i) for i in insts],
        })

    async def open_interest(request: web.Request) -> web.Response:
        symbol = request.query.get("symbol")
        if not symbol:
            return _missing("symbol")
        now = ctx.now_ms()
        inst = lookup(symbol, now)
        if inst is None:
            return _invalid_symbol()
        oi = market.open_interest(inst.coin, now, "binance")
        if not inst.perpetual:
            oi *= 0.03  # quarterlies hold a few percent of the perpetual's OI
        oi_str = fixed(oi, decimals(inst.spec.step))
        mark_str = prices(inst, now)[0]
        ctx.recorder.write([{
            "venue": VENUE, "kind": "open_interest", "endpoint": request.path, "coin": inst.coin,
            "raw_symbol": inst.symbol, "ts_ms": now, "served_ns": time.time_ns(),
            "open_interest": float(oi_str), "open_interest_value": float(oi_str) * float(mark_str),
            "mark_price": float(mark_str),
        }])
        return json_response({"symbol": inst.symbol, "openInterest": oi_str, "time": now})

    def premium_row(inst: Instrument, now: int) -> tuple[dict, dict]:
        mark, index, settle = prices(inst, now)
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

    async def premium_index(request: web.Request) -> web.Response:
        now = ctx.now_ms()
        symbol = request.query.get("symbol")
        if symbol:
            inst = lookup(symbol, now)
            if inst is None:
                return _invalid_symbol()
            row, record = premium_row(inst, now)
            ctx.recorder.write([record])
            return json_response(row)
        pairs = [premium_row(i, now) for i in instruments(now) if i.servable]
        ctx.recorder.write([rec for _, rec in pairs])
        return json_response([row for row, _ in pairs])

    async def funding_info(request: web.Request) -> web.Response:
        """Only symbols whose interval (or cap/floor) was adjusted are listed: absent = 8h."""
        now = ctx.now_ms()
        rows, records = [], []
        for inst in instruments(now):
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

    async def ping(request: web.Request) -> web.Response:
        return json_response({})

    async def server_time(request: web.Request) -> web.Response:
        return json_response({"serverTime": ctx.now_ms()})

    app = web.Application(middlewares=[logging_middleware("binance")])
    app.add_routes([
        web.get("/fapi/v1/exchangeInfo", exchange_info),
        web.get("/fapi/v1/openInterest", open_interest),
        web.get("/fapi/v1/premiumIndex", premium_index),
        web.get("/fapi/v1/fundingInfo", funding_info),
        web.get("/fapi/v1/ping", ping),
        web.get("/fapi/v1/time", server_time),
    ])
    history.install_binance(app, ctx)  # openInterestHist, fundingRate, /_emulator/stats
    from emulator.binance import ws as ws_binance  # noqa: PLC0415 - split follows

    ws_binance.register(app, ctx)  # liquidation WebSocket streams + /_emulator/ fault controls
    return app


from emulator.binance.faults import FAULTS  # noqa: E402 - split follows
from emulator.binance.limits import LIMITS  # noqa: E402
from emulator.binance.ws import REPLAY  # noqa: E402
from emulator.venue import EmulatedVenue  # noqa: E402

EMULATED = EmulatedVenue("binance", create_app, FAULTS, LIMITS, REPLAY)
