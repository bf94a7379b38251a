"""Owns Binance USDT-M's listing: the contracts the emulator lists (the universe's USDT perpetuals,
`emulator/universe.py`, the BTC current-quarter contract whose symbol rolls with time, a USDC
perpetual not trading yet), their static contract data and their exchangeInfo `symbols` items.

Shapes follow the real API (emulator/samples/binanceusdm.json): numbers are strings except
timestamps and integer fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from emulator.common import decimals, quarterly_expiry_ms
from emulator.listings import ListingRules
from emulator.market import Market
from emulator.universe import Listing, cached, grid, power, universe_of

VENUE = "BINANCE"  # the venue of its ground-truth records


@dataclass(frozen=True, slots=True)
class Spec:
    """Static contract data (real Binance values for the reference coins, rounded; derived from the
    price for the others)."""

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


# A perpetual listed at run time: NEWUSDT, 1000NEWUSDT; funding every 4 h unless asked otherwise.
LISTING = ListingRules(r"([0-9A-Z]{2,20}?)(USDT)", "NEWCOINUSDT or 1000NEWCOINUSDT", "USDT", (1, 4, 8), 4)
_STATUS = {"trading": "TRADING", "settling": "SETTLING", "pending": "PENDING_TRADING"}
PERPETUAL_DELIVERY_MS = 4133404800000  # 2100-12-25, the deliveryDate of every perpetual


def generated_spec(market: Market, listing: Listing) -> Spec:
    """Contract data of a generated perpetual: tickSize written with the price precision (sometimes
    with Binance's extra zeros, "0.0100"), whole-number lot limits."""
    tick_exp, step_exp, u = grid(market, listing)
    tick = power(tick_exp, max(0, -tick_exp) + (1 if u > 0.8 else 0))
    price = market.index_price(listing.base, universe_of(market).anchor_ms)
    max_qty = 10 ** max(step_exp + 3, min(9, round(math.log10(2e6 / price))))
    return Spec(tick, power(step_exp), str(max_qty), str(max(10 ** max(step_exp, 0), max_qty // 10)), "5",
                listing.listed_ms, decimals(tick))


def instruments(market: Market, t_ms: int) -> list[Instrument]:
    """Every contract of exchangeInfo: the universe's perpetuals (USDT, TRADING; a few SETTLING or
    PENDING_TRADING), the BTC current-quarter contract (its symbol rolls with time) and a USDC
    perpetual not trading yet (exercises `active` filtering)."""
    expiry = quarterly_expiry_ms(t_ms)
    return cached(market, "binance.instruments", expiry, lambda: _build(market, expiry))


def by_symbol(market: Market, t_ms: int) -> dict[str, Instrument]:
    expiry = quarterly_expiry_ms(t_ms)
    return cached(market, "binance.by_symbol", expiry, lambda: {i.symbol: i for i in instruments(market, t_ms)})


def _build(market: Market, expiry: int) -> list[Instrument]:
    out = []
    for listing in universe_of(market).of("binance"):
        spec = _SPECS[listing.base] if listing.core else generated_spec(market, listing)
        out.append(Instrument(listing.symbol, listing.base, listing.quote, "PERPETUAL", _STATUS[listing.status],
                              PERPETUAL_DELIVERY_MS, spec.onboard_ms, spec))
    yymmdd = datetime.fromtimestamp(expiry / 1000, UTC).strftime("%y%m%d")
    out.append(
        Instrument(f"BTCUSDT_{yymmdd}", "BTC", "USDT", "CURRENT_QUARTER", "TRADING", expiry, expiry - 180 * 86_400_000,
                   _SPECS["BTC"])
    )
    out.append(Instrument("XRPUSDC", "XRP", "USDC", "PERPETUAL", "PENDING_TRADING", PERPETUAL_DELIVERY_MS, 1893456000000,
                          _SPECS["XRP"]))
    return out


def symbol_info(inst: Instrument) -> dict:
    """The exchangeInfo `symbols` item of an instrument."""
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
        "underlyingSubType": ["PoW"] if inst.coin == "BTC" else ["Meme"] if inst.coin[:1].isdigit() else ["Layer-1"],
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
