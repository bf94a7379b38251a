"""Owns Hyperliquid's error answers: HTTP 422 with a plain-text serde message for a body it cannot
map to a request, HTTP 503 during maintenance."""

from __future__ import annotations

from aiohttp import web


def deserialize_error(detail: str) -> web.Response:
    """The real API answers a body it cannot map to a request with 422 and a plain-text
    serde message (ccxt maps HTTP 422 to ExchangeError)."""
    return web.Response(status=422, text=f"Failed to deserialize the JSON body into the target type: {detail}")


def maintenance() -> web.Response:
    """The answer during a maintenance window (also the replay's answer past a tape's end)."""
    return web.Response(status=503, text="Service Unavailable: scheduled maintenance")
