"""Owns Bybit v5's answer envelope: HTTP 200 `{"retCode","retMsg","result","retExtInfo","time"}`,
errors as a non-zero retCode (10001 for bad parameters), HTTP 503 `retCode` 10016 during
maintenance."""

from __future__ import annotations

import time

from aiohttp import web

from emulator.common import json_response


def envelope(result: dict, now: int, code: int = 0, msg: str = "OK") -> web.Response:
    return json_response({"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": now})


def params_error(now: int, msg: str) -> web.Response:
    # The message real Bybit gives for an unknown symbol is "params error: symbol invalid".
    return envelope({}, now, 10001, msg)


def invalid_symbol() -> web.Response:
    return params_error(int(time.time() * 1000), "params error: symbol invalid")


def maintenance() -> web.Response:
    """The answer during a maintenance window (also the replay's answer past a tape's end)."""
    return json_response({"retCode": 10016, "retMsg": "System maintenance, please try again later.", "result": {},
                          "retExtInfo": {}, "time": int(time.time() * 1000)}, status=503)
