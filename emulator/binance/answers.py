"""Owns Binance USDT-M's error answers: HTTP 400 `{"code": ..., "msg": ...}` for bad requests and
HTTP 503 `-1001` during maintenance."""

from __future__ import annotations

from aiohttp import web

from emulator.common import json_response


def error(code: int, msg: str) -> web.Response:
    return json_response({"code": code, "msg": msg}, status=400)


def invalid_symbol() -> web.Response:
    return error(-1121, "Invalid symbol.")


def missing(param: str) -> web.Response:
    return error(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def maintenance() -> web.Response:
    """The answer during a maintenance window (also the replay's answer past a tape's end)."""
    return json_response({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
                         status=503)
