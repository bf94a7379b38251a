"""Owns Hyperliquid's request limit as the emulator enforces it: weight 1200 per rolling minute,
an info request weighs 20 (2 for the light types, 60 for userRole); no usage headers; over the
limit HTTP 429 without a Retry-After, and no ban (none is documented)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from emulator.ratelimit import LimitRules, Rule

LIGHT = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}


def rules() -> list[Rule]:
    return [Rule("WEIGHT", 1200, 60.0, False)]


def weights(request: web.Request, body: bytes) -> dict[str, float] | None:
    if request.path != "/info":
        return None
    try:
        kind = msgspec.json.decode(body).get("type")
    except (msgspec.DecodeError, AttributeError):
        kind = None
    return {"WEIGHT": 2 if kind in LIGHT else 60 if kind == "userRole" else 20}


def refused(*_: object) -> web.StreamResponse:
    return web.Response(status=429, text="null", content_type="application/json")


LIMITS = LimitRules(rules=rules, weights=weights, limited=refused, banned=refused)  # names no wait, never bans
