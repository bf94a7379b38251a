"""Owns Bybit's linear listing: the contracts the emulator lists (USDT perpetuals of the listed coins,
the BTC quarterly whose symbol rolls with time, a pre-market PreLaunch perpetual) and their static
contract data (close to the real Bybit values).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from emulator.common import quarterly_expiry_ms
from emulator.market import DAY, LISTINGS, MIN

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
