"""Owns Binance USDT-M's request limits as the emulator enforces them: REQUEST_WEIGHT 2400 per
fixed minute, `/fapi/v1/fundingRate` + `/fapi/v1/fundingInfo` 500 requests per 5 minutes,
`/futures/data/*` 1000 per 5 minutes; the `X-MBX-USED-WEIGHT-1M` header; HTTP 429 `-1003` with
`Retry-After`, and a 418 ban (2 minutes, doubling) for a client that keeps going."""

from __future__ import annotations

import math

from aiohttp import web

from emulator.common import json_response
from emulator.ratelimit import LimitRules, Rule


def rules() -> list[Rule]:
    return [Rule("REQUEST_WEIGHT", 2400, 60.0, True), Rule("FUNDING", 500, 300.0, True), Rule("DATA", 1000, 300.0, True)]


def weights(request: web.Request, body: bytes) -> dict[str, float] | None:
    """premiumIndex weighs 1 with a symbol and 10 without (all symbols); fundingInfo weighs 0 and counts
    against the 500 per 5 minutes it shares with fundingRate (Binance docs, "Get Funding Rate Info");
    openInterest, exchangeInfo and everything else here 1: a full universe's open interest, one
    request per symbol, is ~540 of the 2400 per minute."""
    path = request.path
    if path.startswith("/futures/data/"):
        return {"DATA": 1}
    if not path.startswith("/fapi/"):
        return None  # WebSocket paths and the like
    if path == "/fapi/v1/fundingInfo":
        return {"FUNDING": 1}
    if path == "/fapi/v1/fundingRate":
        return {"REQUEST_WEIGHT": 1, "FUNDING": 1}
    if path == "/fapi/v1/premiumIndex":
        return {"REQUEST_WEIGHT": 1 if request.query.get("symbol") else 10}
    return {"REQUEST_WEIGHT": 1}


def headers(rules: dict[str, Rule], now: float, scale: float) -> dict[str, str]:
    return {"X-MBX-USED-WEIGHT-1M": str(int(rules["REQUEST_WEIGHT"].used(now, scale)))}


def limited(now: float, rule: Rule, wait: float, retry_after: int) -> web.StreamResponse:
    msg = (f"Too many requests; current limit of IP(127.0.0.1) is {rule.limit} requests per minute. "
           "Please use the websocket for live updates to avoid polling the API.")
    return json_response({"code": -1003, "msg": msg}, status=429, headers={"Retry-After": str(retry_after)})


def banned(now: float, ban_until: float) -> web.StreamResponse:
    left = max(1, math.ceil(ban_until - now))
    msg = (f"Way too much request weight used; IP banned until {int(ban_until * 1000)}. "
           "Please use the websocket for live updates to avoid bans.")
    return json_response({"code": -1003, "msg": msg}, status=418, headers={"Retry-After": str(left)})


LIMITS = LimitRules(rules=rules, weights=weights, limited=limited, banned=banned, headers=headers, ban_s=120.0,
                    told_wait=lambda wait, retry_after: retry_after)  # whole seconds, as Retry-After says
