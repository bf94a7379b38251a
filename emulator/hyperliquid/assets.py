"""Owns Hyperliquid's perpetual universe as the emulator lists it (asset index order = ccxt's market
id; delisted coins kept at the end so no index moves), the `meta` answer, and how Hyperliquid
prints numbers (trailing zeros cut, prices to 5 significant figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from emulator.common import stripped
from emulator.market import LISTINGS

VENUE = "HYPERLIQUID"  # the venue of its ground-truth records


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    sz_decimals: int
    max_leverage: int


# Universe order is the asset index ccxt uses as the market id (BTC = 0, ETH = 1, like the real one).
ASSETS: tuple[Asset, ...] = (
    Asset("BTC", 5, 40),
    Asset("ETH", 4, 25),
    Asset("SOL", 2, 20),
    Asset("XRP", 0, 20),
    Asset("DOGE", 0, 10),
    Asset("HYPE", 2, 10),
)
assert tuple(a.name for a in ASSETS) == LISTINGS["hyperliquid"]

# Delisted coins stay in the universe (so the asset indices of the others never move), flagged
# with the real API's optional fields `isDelisted`, `onlyIsolated`, `marginMode` (Hyperliquid docs,
# info endpoint, perpetuals); their context has no book: zero OI and funding, premium / midPx /
# impactPxs null. ccxt lists them inactive, so nobody collects them.
DELISTED: tuple[dict, ...] = (
    {"szDecimals": 1, "name": "MATIC", "maxLeverage": 20, "marginTableId": 20, "isDelisted": True},
    {"szDecimals": 0, "name": "HPOS", "maxLeverage": 3, "marginTableId": 3, "onlyIsolated": True,
     "isDelisted": True, "marginMode": "strictIsolated"},
)
DELISTED_PX = {"MATIC": "0.37621", "HPOS": "0.011"}

USDC_TOKEN = {
    "name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0,
    "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True, "evmContract": None, "fullName": None,
}


def meta() -> dict:
    """The `meta` answer: the universe (delisted coins last) and the margin tables."""
    return {
        "universe": [
            {"szDecimals": a.sz_decimals, "name": a.name, "maxLeverage": a.max_leverage,
             "marginTableId": a.max_leverage}
            for a in ASSETS
        ] + [dict(d) for d in DELISTED],
        "marginTables": [
            [lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}]
            for lev in sorted({a.max_leverage for a in ASSETS} | {d["marginTableId"] for d in DELISTED})
        ],
        "collateralToken": 0,
    }


def number(x: float, dp: int) -> str:
    """Hyperliquid style: trailing zeros removed but at least one decimal ("77562.0")."""
    s = stripped(x, dp)
    return s if "." in s else s + ".0"


def price(x: float, sz_decimals: int) -> str:
    """Hyperliquid price: 5 significant figures, at most 6 - szDecimals decimals; integer
    prices are always allowed (so BTC is printed as "104123.0")."""
    if x >= 10_000:
        return number(round(x), 0)
    digits = 5 - (math.floor(math.log10(abs(x))) + 1) if x else 5
    return number(x, max(0, min(6 - sz_decimals, digits)))
