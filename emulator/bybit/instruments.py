"""Owns Bybit's linear listing: the contracts the emulator lists (the universe's USDT and USDC
perpetuals, `emulator/universe.py`, the BTC quarterly whose symbol rolls with time, a pre-market
PreLaunch perpetual) and their static contract data (close to the real Bybit values for the
reference coins, derived from the price for the others).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from emulator.common import decimals, fixed, quarterly_expiry_ms
from emulator.listings import ListingRules
from emulator.market import DAY, MIN, Market
from emulator.universe import Listing, cached, grid, power, universe_of

VENUE = "BYBIT"  # the venue of its ground-truth records


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


# A perpetual listed at run time: NEWUSDT, 1000NEWUSDT; funding every 4 h unless asked otherwise.
LISTING = ListingRules(r"([0-9A-Z]{2,20}?)(USDT)", "NEWCOINUSDT or 10000NEWCOINUSDT", "USDT", (1, 2, 4, 8), 4)
SYMBOL_IDS = {"BTC": 5, "ETH": 6, "SOL": 171, "XRP": 24, "DOGE": 45, "HYPE": 603}  # symbolId (int, like the venue's)

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
    symbol_id: int = 0
    quote: str = "USDT"  # quoteCoin == settleCoin: "USDT", or "USDC" (BTCPERP)

    @property
    def perpetual(self) -> bool:
        return self.contract_type == "LinearPerpetual"

    @property
    def oi_share(self) -> float:
        """Its share of the coin's open interest on Bybit: quarterlies and USDC perpetuals hold a few %."""
        return 0.03 if not self.perpetual else 0.05 if self.quote == "USDC" else 1.0


def generated_spec(market: Market, listing: Listing) -> Spec:
    """Contract data of a generated perpetual: a power-of-ten tick (sometimes 5 of them, "0.0005"),
    priceScale = its decimals, lot limits worth a few million USD."""
    tick_exp, step_exp, u = grid(market, listing)
    tick = power(tick_exp) if u < 0.85 else f"{5 * 10.0 ** (tick_exp - 1):.{max(0, 1 - tick_exp)}f}"
    step = power(step_exp)
    price = market.index_price(listing.base, universe_of(market).anchor_ms)
    max_qty = 10 ** max(step_exp + 3, min(9, round(math.log10(3e6 / price))))
    qty_dp = decimals(step)
    leverage = ("25.00", "50.00", "75.00", "12.50", "20.00")[int(u * 1000) % 5]
    return Spec(decimals(tick), tick, step, fixed(max_qty, qty_dp), fixed(max(max_qty / 10, float(step)), qty_dp),
                leverage, listing.listed_ms)


def instruments(market: Market, t_ms: int) -> list[Instrument]:
    """The universe's linear perpetuals (USDT, and the USDC ones: BTCPERP) plus the BTC quarterly
    (its symbol rolls with time)."""
    expiry = quarterly_expiry_ms(t_ms)
    return cached(market, "bybit.instruments", expiry, lambda: _build(market, expiry))


def by_symbol(market: Market, t_ms: int) -> dict[str, Instrument]:
    expiry = quarterly_expiry_ms(t_ms)
    return cached(market, "bybit.by_symbol", expiry, lambda: {i.symbol: i for i in instruments(market, t_ms)})


def _build(market: Market, expiry: int) -> list[Instrument]:
    out = []
    for k, listing in enumerate(universe_of(market).of("bybit")):
        if listing.core or listing.quote == "USDC" and listing.base in _SPECS:
            spec = _SPECS[listing.base]
            spec = spec if listing.core else Spec(spec.price_scale, spec.tick, spec.qty_step, spec.max_qty,
                                                  spec.max_mkt_qty, spec.max_leverage, listing.listed_ms)
        else:
            spec = generated_spec(market, listing)
        symbol_id = SYMBOL_IDS[listing.base] if listing.core else 1000 + k
        out.append(Instrument(listing.symbol, listing.base, "LinearPerpetual", 0, spec.launch_ms, spec, symbol_id,
                              listing.quote))
    tag = datetime.fromtimestamp(expiry / 1000, UTC).strftime("%d%b%y").upper()  # 27MAR26
    out.append(Instrument(f"BTCUSDT-{tag}", "BTC", "LinearFutures", expiry, expiry - 180 * DAY, _SPECS["BTC"],
                          SYMBOL_IDS["BTC"] + 1000))
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
