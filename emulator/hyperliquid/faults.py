"""Owns Hyperliquid's side of the emulated faults: a request's endpoint is its info type, the rows of
metaAndAssetCtxs are the asset contexts (matched by the coin of the universe entry at the same
index), and a delisted coin stays in the universe flagged `isDelisted: true` with a context without
a book, and leaves predictedFundings (each withheld row recorded as a "delisted" fault)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from emulator.faults import DataRows, FaultRules, Record
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


def delist(endpoint: str, data: Any, delisted: set[str], record: Record) -> Any:
    if endpoint == "meta" and isinstance(data, dict):
        for item in data.get("universe", []):
            if item.get("name") in delisted:
                item["isDelisted"] = True
    elif endpoint == "metaAndAssetCtxs" and isinstance(data, list) and len(data) == 2:
        gone = []
        for i, item in enumerate(data[0].get("universe", [])):
            if item.get("name") in delisted and not item.get("isDelisted"):
                item["isDelisted"] = True
                ctx = data[1][i]
                last = ctx.get("markPx")
                data[1][i] = {"funding": "0.0", "openInterest": "0.0", "prevDayPx": last, "dayNtlVlm": "0.0",
                              "premium": None, "oraclePx": last, "markPx": last, "midPx": None, "impactPxs": None,
                              "dayBaseVlm": "0.0"}
                gone.append({"name": item["name"]})
        if gone:
            record(endpoint, "delisted", gone, "name", None, None)
    elif endpoint == "predictedFundings" and isinstance(data, list):
        gone = [{"name": row[0]} for row in data if row and row[0] in delisted]
        data = [row for row in data if not row or row[0] not in delisted]
        if gone:
            record(endpoint, "delisted", gone, "name", None, None)
    return data


FAULTS = FaultRules(
    maintenance=maintenance,
    data_endpoints={"metaAndAssetCtxs": DataRows(asset_ctxs, "name", "openInterest", None, cleanup=unnamed)},
    endpoint=info_type,
    delist=delist,
)
