"""Owns the ground truth: every value the emulator serves, one JSON line per symbol per response.

Record format (keys always present unless marked optional):

    venue        "BINANCE" | "BYBIT" | "HYPERLIQUID"
    kind         "open_interest" | "funding_rate" | "instrument"
    endpoint     the path (Binance/Bybit) or info type (Hyperliquid) that served it,
                 e.g. "/fapi/v1/premiumIndex", "/v5/market/tickers", "metaAndAssetCtxs"
    coin         "BTC"
    raw_symbol   venue symbol: "BTCUSDT", "BTCUSDT_260327", "BTC"
    ts_ms        the timestamp carried in the payload (Binance "time", Bybit envelope "time"
                 or open-interest row "timestamp"), null when there is none (Hyperliquid)
    served_ns    time.time_ns() when the response was built
  open_interest: open_interest (coins), open_interest_value (USD; for Binance oi * mark at
                 the same instant, which is what a client computes; Hyperliquid oi * markPx),
                 mark_price (optional)
  funding_rate:  rate (null for non-perpetuals), next_funding_ms, interval_minutes,
                 mark_price, index_price (optional), predicted_rate + predicted (Hyperliquid
                 predictedFundings only: {"BINANCE": {...} | null, "BYBIT": ..., "HYPERLIQUID": ...})
  instrument:    contract_type, status, active, interval_minutes, tick_size, lot_size, ...

Values are the floats of the exact strings served, so they compare equal (==) with what
ccxt parses. Written with a single write + flush per response, so a concurrent reader
sees complete lines right away; a torn last line is skipped by load_ground_truth.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


class GroundTruth:
    """Append-only JSONL recorder. With path=None it records nothing (cheap no-op)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab") if self.path is not None else None  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append records as JSON lines, then flush (one syscall per response)."""
        if self._file is None or not records:
            return
        self._file.write(b"".join(_ENCODER.encode(r) + b"\n" for r in records))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def load_ground_truth(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete records of a ground-truth file, in the order they were served."""
    data = Path(path).read_bytes()
    end = data.rfind(b"\n")
    if end < 0:
        return []
    return [_DECODER.decode(line) for line in data[: end + 1].splitlines() if line.strip()]
