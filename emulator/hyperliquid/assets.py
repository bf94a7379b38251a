"""Owns Hyperliquid's perpetual universe as the emulator lists it (asset index order = ccxt's market
id; delisted coins keep their index, flagged `isDelisted`), the `meta` answer, and how Hyperliquid
prints numbers (trailing zeros cut, prices to 5 significant figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from emulator.common import stripped
from emulator.listings import ListingRules
from emulator.market import DAY, LISTINGS, Market
from emulator.universe import HL_CLOSING, Listing, cached, universe_of

VENUE = "HYPERLIQUID"  # the venue of its ground-truth records


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    sz_decimals: int
    max_leverage: int
    delisted: bool = False  # isDelisted: kept in the universe, no book
    only_isolated: bool = False  # onlyIsolated, marginMode "strictIsolated"
    last_px: str = ""  # a delisted coin's last price (its context's mark, oracle and prevDay price)


# Universe order is the asset index ccxt uses as the market id (BTC = 0, ETH = 1, like the real one).
CORE: dict[str, Asset] = {a.name: a for a in (
    Asset("BTC", 5, 40),
    Asset("ETH", 4, 25),
    Asset("SOL", 2, 20),
    Asset("XRP", 0, 20),
    Asset("DOGE", 0, 10),
    Asset("HYPE", 2, 10),
)}
assert tuple(CORE) == LISTINGS["hyperliquid"]

# Delisted coins stay in the universe (so the asset indices of the others never move), flagged
# with the real API's optional fields `isDelisted`, `onlyIsolated`, `marginMode` (Hyperliquid docs,
# info endpoint, perpetuals); their context has no book: zero OI and funding, premium / midPx /
# impactPxs null. ccxt lists them inactive, so nobody collects them. These two close the universe
# built at start (the full universe has more, where they were listed: `emulator/universe.py`);
# coins listed at run time come after them, as a new listing takes the next index on the venue.
DELISTED: dict[str, Asset] = {a.name: a for a in (
    Asset("MATIC", 1, 20, delisted=True, last_px="0.37621"),
    Asset("HPOS", 0, 3, delisted=True, only_isolated=True, last_px="0.011"),
)}
assert tuple(DELISTED) == HL_CLOSING

# A perpetual listed at run time: NEWCOIN, or kNEWCOIN for a small-priced one; funding every hour.
LISTING = ListingRules(r"(k?[A-Z][A-Z0-9]{1,15})", "NEWCOIN or kNEWCOIN", "USDC", (1,), 1)

USDC_TOKEN = {
    "name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0,
    "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True, "evmContract": None, "fullName": None,
}


def assets(market: Market) -> list[Asset]:
    """The universe in asset-index order, delisted coins included."""
    listings = universe_of(market).of("hyperliquid")
    return cached(market, "hyperliquid.assets", None, lambda: [_asset(market, x) for x in listings])


def _asset(market: Market, listing: Listing) -> Asset:
    if listing.core or listing.base in DELISTED:
        return CORE.get(listing.base) or DELISTED[listing.base]
    px = market.index_price(listing.base, max(listing.listed_ms, universe_of(market).anchor_ms - 30 * DAY))
    sz = max(0, min(5, math.floor(math.log10(px)) + 1))
    leverage = (20, 10, 10, 5, 3)[min(4, listing.rank // 90)]
    delisted = listing.status == "delisted"
    return Asset(listing.base, sz, leverage, delisted, last_px=price(px, sz) if delisted else "")


def meta(market: Market) -> dict:
    """The `meta` answer: the universe (delisted coins flagged) and the margin tables."""
    listed = assets(market)
    return {
        "universe": [universe_item(a) for a in listed],
        "marginTables": [
            [lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}]
            for lev in sorted({a.max_leverage for a in listed})
        ],
        "collateralToken": 0,
    }


def universe_item(a: Asset) -> dict:
    item = {"szDecimals": a.sz_decimals, "name": a.name, "maxLeverage": a.max_leverage, "marginTableId": a.max_leverage}
    if a.only_isolated:
        item["onlyIsolated"] = True
    if a.delisted:
        item["isDelisted"] = True
    if a.only_isolated:
        item["marginMode"] = "strictIsolated"
    return item


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
