"""One adapter per venue; `adapter(name)` gives a fresh one ("binance", "bybit", "hyperliquid")."""

from actors.venues.base import UnknownSymbol, VenueAdapter
from actors.venues.binance import BinanceAdapter
from actors.venues.bybit import BybitAdapter
from actors.venues.hyperliquid import HyperliquidAdapter

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
