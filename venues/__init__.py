"""The venues: everything that talks to an exchange, used by the mesh and the CLI alike.

One adapter per venue; `adapter(name)` gives a fresh one ("binance", "bybit", "hyperliquid").
Besides the adapters: the liquidation stream, history paging, the request budget and traffic recording.
"""

from venues.base import UnknownSymbol, VenueAdapter
from venues.binance import BinanceAdapter
from venues.bybit import BybitAdapter
from venues.hyperliquid import HyperliquidAdapter

ADAPTERS: dict[str, type[VenueAdapter]] = {
    "binance": BinanceAdapter,
    "bybit": BybitAdapter,
    "hyperliquid": HyperliquidAdapter,
}


def adapter(name: str) -> VenueAdapter:
    try:
        return ADAPTERS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown venue {name!r}; supported: {', '.join(ADAPTERS)}") from None


__all__ = ["ADAPTERS", "UnknownSymbol", "VenueAdapter", "adapter"]
