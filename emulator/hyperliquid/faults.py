"""Owns Hyperliquid's side of the emulated faults: a request's endpoint is its info type, the rows of
metaAndAssetCtxs are the asset contexts (matched by the coin of the universe entry at the same
index), and delisting is not emulated."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from emulator.faults import DataRows, FaultRules
from emulator.hyperliquid.answers import maintenance


def info_type(request: web.Request, body: bytes) -> str:
    if request.path == "/info":
        try:
            return str(msgspec.json.decode(body).get("type"))
        except (msgspec.DecodeError, AttributeError):
            return "info"
    return request.path


def asset_ctxs(data: Any) -> list[dict]:
    """The contexts of [meta, ctxs], each given its coin for matching (removed by `unnamed`)."""
    if isinstance(data, list) and len(data) == 2:
        for meta, ctx in zip(data[0]["universe"], data[1], strict=False):
            ctx["name"] = meta["name"]
        return data[1]
    return []


def unnamed(rows: list[dict]) -> None:
    for r in rows:
        r.pop("name", None)


FAULTS = FaultRules(
    maintenance=maintenance,
    data_endpoints={"metaAndAssetCtxs": DataRows(asset_ctxs, "name", "openInterest", None, cleanup=unnamed)},
    endpoint=info_type,
)
