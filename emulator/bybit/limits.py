"""Owns Bybit's request limit as the emulator enforces it: 600 requests per rolling 5 s per IP,
the `X-Bapi-Limit*` headers, HTTP 200 `retCode` 10006 "Too many visits!" over the limit and
HTTP 403 "access too frequent" (10 minutes, doubling) for a client that keeps going."""

from __future__ import annotations

from aiohttp import web

from emulator.common import json_response
from emulator.ratelimit import LimitRules, Rule


def rules() -> list[Rule]:
    return [Rule("IP", 600, 5.0, False)]


def weights(request: web.Request, body: bytes) -> dict[str, float] | None:
    return {"IP": 1} if request.path.startswith("/v5/") else None


def headers(rules: dict[str, Rule], now: float, scale: float) -> dict[str, str]:
    rule = rules["IP"]
    used = rule.used(now, scale)
    reset_ms = int((now + (rule.reset_in(now, scale, 1) if used >= rule.limit else 0)) * 1000)
    return {"X-Bapi-Limit": str(rule.limit), "X-Bapi-Limit-Status": str(max(0, int(rule.limit - used))),
            "X-Bapi-Limit-Reset-Timestamp": str(reset_ms)}


def limited(now: float, rule: Rule, wait: float, retry_after: int) -> web.StreamResponse:
    return json_response({"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {},
                          "time": int(now * 1000)})


def banned(now: float, ban_until: float) -> web.StreamResponse:
    return web.Response(status=403, text="access too frequent")


LIMITS = LimitRules(rules=rules, weights=weights, limited=limited, banned=banned, headers=headers, ban_s=600.0,
                    told_wait=lambda wait, retry_after: wait)
