"""Owns Binance's side of the emulated faults: where its data rows are (openInterest, premiumIndex)
and how a delisted symbol leaves exchangeInfo, premiumIndex and fundingInfo."""

from __future__ import annotations

from typing import Any

from emulator.binance.answers import invalid_symbol, maintenance
from emulator.faults import DataRows, FaultRules, Record, one_row, rows_or_row


def delist(endpoint: str, data: Any, delisted: set[str], record: Record) -> Any:
    if endpoint == "/fapi/v1/exchangeInfo":
        data["symbols"] = [s for s in data["symbols"] if s["symbol"] not in delisted]
    elif endpoint in ("/fapi/v1/premiumIndex", "/fapi/v1/fundingInfo") and isinstance(data, list):
        data = [r for r in data if r.get("symbol") not in delisted]
    return data


FAULTS = FaultRules(
    maintenance=maintenance,
    data_endpoints={
        "/fapi/v1/openInterest": DataRows(one_row, "symbol", "openInterest", "time"),
        "/fapi/v1/premiumIndex": DataRows(rows_or_row, "symbol", "markPrice", "time"),
    },
    invalid_symbol=invalid_symbol,
    delist=delist,
)
