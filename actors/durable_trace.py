"""Opt-in: when did each liquidation become durable in the writer (bench/liquidation_latency.py).

Set `DERIVS_DURABLE_TRACE=/path/trace.jsonl` in the environment of the mesh (the coordinator
passes it to the writer). After every WAL sync - the moment the writer may acknowledge - it
appends one JSON line: `{"t": <ns after the sync>, "liq": [[instrument_id, ts_event, side,
quantity, price], ...]}` for the liquidations that sync made durable. Unset (the default),
nothing is traced and the writer does one `is None` check per sync.
"""

from __future__ import annotations

import os
import time

import msgspec

from messages.events import AnyEvent, Liquidation

ENV = "DERIVS_DURABLE_TRACE"


class DurableTrace:
    def __init__(self, path: str) -> None:
        self.file = open(path, "ab", buffering=1 << 16)  # noqa: SIM115 - lives as long as the writer
        self.encoder = msgspec.json.Encoder()

    @classmethod
    def from_env(cls) -> DurableTrace | None:
        path = os.environ.get(ENV)
        return cls(path) if path else None

    def synced(self, rows: list[AnyEvent]) -> None:
        t = time.time_ns()
        liq = [[e.instrument_id, e.ts_event, e.side, e.quantity, e.price] for e in rows if type(e) is Liquidation]
        if liq:
            self.file.write(self.encoder.encode({"t": t, "liq": liq}) + b"\n")
            self.file.flush()
