"""The venues: everything that talks to an exchange, used by the mesh and the CLI alike. This
module is the registry: the venues' names and where each one's adapter lives.

    from venues import adapter, VENUE_NAMES
    ad = adapter("bybit")                  # a fresh venues.bybit.adapter.BybitAdapter
    periods = oi_history_periods("bybit")  # without loading ccxt (the topology checks with it)

One package per venue (`venues/<venue>/`): `adapter.py` (markets, definitions, current OI and
funding, sandbox URLs), `history.py` (history paging), `schemas.py` (its payloads as structs),
`limits.py` (request limits, rate-limit answers, OI history periods; import-light) and
`liquidations.py` (its liquidation frames). Venue-neutral: `base.py` (the adapter interface),
`client.py` (the ccxt client subclass), `budget.py`, `schemas.py`, `history.py`, `recording.py`,
`liquidation_stream.py`, `liquidations.py`.

Import-light on purpose (no ccxt): the adapters are imported when first asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from venues.base import VenueAdapter

# topology name -> the adapter class, "module:Class"
ADAPTER_CLASSES: dict[str, str] = {
    "binance": "venues.binance.adapter:BinanceAdapter",
    "bybit": "venues.bybit.adapter:BybitAdapter",
    "hyperliquid": "venues.hyperliquid.adapter:HyperliquidAdapter",
}
VENUE_NAMES: tuple[str, ...] = tuple(ADAPTER_CLASSES)


def _known(name: str) -> str:
    key = name.lower()
    if key not in ADAPTER_CLASSES:
        raise ValueError(f"unknown venue {name!r}; supported: {', '.join(ADAPTER_CLASSES)}")
    return key


def adapter_class(name: str) -> type[VenueAdapter]:
    module, cls = ADAPTER_CLASSES[_known(name)].split(":")
    return getattr(import_module(module), cls)


def adapter(name: str) -> VenueAdapter:
    """A fresh adapter of the venue (it keeps per-client state: delisted symbols, intervals)."""
    return adapter_class(name)()


def plain_client(venue: str, base_url: str, *, pro: bool = False, config: dict[str, Any] | None = None) -> Any:
    """A plain ccxt client (no budget, no hooks) of `venue` against the emulator at `base_url`:
    what a user's own ccxt script would do (tests, benchmark baselines). `config` is deep-merged
    over the sandbox config by ccxt itself. Remember `await client.close()`."""
    import ccxt.async_support as ccxt_async

    if pro:
        import ccxt.pro as module
    else:
        module = ccxt_async
    ad = adapter_class(venue)
    cls = getattr(module, ad.ccxt_id)
    return cls(cls.deep_extend(ad.sandbox_config(base_url), config or {}))


def oi_history_periods(name: str) -> tuple[str, ...]:
    """The OI history periods the venue serves (ccxt timeframe names; () = none), import-light."""
    return import_module(f"venues.{_known(name)}.limits").OI_HISTORY_PERIODS


def __getattr__(attr: str) -> Any:
    """`from venues import UnknownSymbol, VenueAdapter` (base.py) and `ADAPTERS` (name -> class),
    loaded on first use."""
    if attr in ("UnknownSymbol", "VenueAdapter"):
        return getattr(import_module("venues.base"), attr)
    if attr == "ADAPTERS":
        return {name: adapter_class(name) for name in ADAPTER_CLASSES}
    raise AttributeError(f"module 'venues' has no attribute {attr!r}")


__all__ = ["ADAPTER_CLASSES", "VENUE_NAMES", "adapter", "adapter_class", "oi_history_periods"]
