"""ccxt constructor config that points a venue's client at the emulator.

Usage (the same dict works for the REST and the pro class of the venue):

    import ccxt.async_support as ccxt_async
    import ccxt.pro as ccxtpro
    from emulator.ccxt_config import ccxt_config, CCXT_CLASS

    cfg = ccxt_config("bybit", "http://127.0.0.1:18081")
    rest = ccxt_async.bybit(cfg)                        # or getattr(ccxt_async, CCXT_CLASS[venue])(cfg)
    pro = ccxtpro.bybit(ccxt_config("bybit", url))      # urls["api"]["ws"] keeps its other entries

or simply ``ccxt_client("bybit", url, pro=True)``. To add your own settings, merge them into
the returned dict (e.g. ``cfg["options"]["defaultType"] = "swap"``, ``cfg["timeout"] = 5000``).

Why a plain dict is enough: ccxt's Exchange.__init__ deep-merges the constructor config into
describe() (``self.deep_extend(self.describe(), config)``), so only the keys given here inside
``urls["api"]`` change and every other entry (the pro classes' ``ws`` sub-dicts, private URLs)
survives. What loses entries is *replacing* the dict after construction
(``ex.urls["api"] = {...}``): never do that; to repoint a live client, assign keys inside it.

The emulator serves REST only for now; the ws URLs point at the same host and port
(ws://host:port/...) so a later WebSocket emulator can be added without changing callers.
"""

from __future__ import annotations

from typing import Any

# Project venue name -> ccxt class name (same name in ccxt.async_support and ccxt.pro).
CCXT_CLASS: dict[str, str] = {"binance": "binanceusdm", "bybit": "bybit", "hyperliquid": "hyperliquid"}


def ccxt_config(venue: str, base_url: str) -> dict[str, Any]:
    """Constructor config for ``CCXT_CLASS[venue]`` (async_support or pro) against base_url.

    base_url is what the emulator's ready file gives, e.g. "http://127.0.0.1:18080".
    A fresh dict is returned on every call, so callers may mutate it.
    """
    http = base_url.rstrip("/")
    ws = "ws" + http[len("http"):] if http.startswith("http") else http  # http->ws, https->wss
    if venue == "binance":
        return {
            "urls": {"api": {
                "fapiPublic": f"{http}/fapi/v1",
                "fapiPublicV2": f"{http}/fapi/v2",
                "fapiPublicV3": f"{http}/fapi/v3",
                "fapiPrivate": f"{http}/fapi/v1",
                "fapiPrivateV2": f"{http}/fapi/v2",
                "fapiPrivateV3": f"{http}/fapi/v3",
                "fapiData": f"{http}/futures/data",
                # ccxt.pro binance rewrites ".../ws" to ".../market/ws" or ".../public/ws"
                "ws": {"linear": f"{ws}/ws"},
            }},
            # fetchCurrencies would call sapi (api.binance.com) when keys are set: keep it off.
            "options": {"fetchCurrencies": False, "fetchMarkets": {"types": ["linear"]}},
        }
    if venue == "bybit":
        return {
            "urls": {"api": {
                "spot": http, "futures": http, "v2": http, "public": http, "private": http,
                "ws": {"public": {"linear": f"{ws}/v5/public/linear"}},
            }},
            # Default types also load spot/inverse/option (11 calls); linear = 2 calls.
            "options": {"fetchMarkets": {"types": ["linear"]}},
        }
    if venue == "hyperliquid":
        return {
            "urls": {"api": {"public": http, "private": http, "ws": {"public": f"{ws}/ws"}}},
            # Default types add spot and hip3 (perpDexs + one call per dex); swap = 2 calls.
            "options": {"fetchMarkets": {"types": ["swap"]}},
        }
    raise ValueError(f"unknown venue {venue!r}; expected one of {sorted(CCXT_CLASS)}")


def ccxt_client(venue: str, base_url: str, *, pro: bool = False, config: dict[str, Any] | None = None) -> Any:
    """Build the async (or pro) ccxt client of venue against base_url.

    ``config`` is deep-merged over ccxt_config() by ccxt itself. Remember ``await client.close()``.
    """
    if pro:
        import ccxt.pro as module
    else:
        import ccxt.async_support as module
    cls = getattr(module, CCXT_CLASS[venue])
    merged = cls.deep_extend(ccxt_config(venue, base_url), config or {})
    return cls(merged)
