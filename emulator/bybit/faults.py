"""Owns Bybit's side of the emulated faults: tickers' rows are `result.list`, the figure a malformed
fault hits is the one-side `singleOpenInterest` the collector stores (a missing one falls back to
openInterest / 2, as in payloads from before 2026-06-11: not malformed), and a delisted symbol
leaves instruments-info and tickers (recorded as withheld from tickers)."""

from __future__ import annotations

from typing import Any

from emulator.bybit.answers import invalid_symbol, maintenance
from emulator.faults import DataRows, FaultRules, Record


def result_rows(data: Any) -> list[dict]:
    if isinstance(data, dict):
        return (data.get("result") or {}).get("list") or []
    return []


def delist(endpoint: str, data: Any, delisted: set[str], record: Record) -> Any:
    if endpoint in ("/v5/market/instruments-info", "/v5/market/tickers"):
        result = data.get("result") or {}
        gone = [r for r in result.get("list", []) if r.get("symbol") in delisted]
        result["list"] = [r for r in result.get("list", []) if r.get("symbol") not in delisted]
        if gone and endpoint == "/v5/market/tickers":
            record(endpoint, "delisted", gone, "symbol", None, data.get("time"))
    return data


FAULTS = FaultRules(
    maintenance=maintenance,
    data_endpoints={"/v5/market/tickers": DataRows(result_rows, "symbol", "singleOpenInterest", None)},
    invalid_symbol=invalid_symbol,
    delist=delist,
)
