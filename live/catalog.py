"""What the live client reads from the mesh's catalog: instrument definitions and history for
warm-up requests. Plain blocking reads through Nautilus's own `ParquetDataCatalog`: the client
runs them in a worker thread, never on the node's loop."""

from __future__ import annotations

import pandas as pd
from nautilus_trader.core.data import Data
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from messages.nautilus import FundingRateUpdate, query_funding_rates

RETRIES = 3  # the writer replaces files while we read: a vanished file is read again


def instruments(catalog_path: str) -> list[Instrument]:
    """The newest definition of every instrument in the catalog (one row per change there)."""
    newest: dict = {}
    for inst in _retry(lambda: ParquetDataCatalog(catalog_path).instruments()):
        if inst.id not in newest or inst.ts_init >= newest[inst.id].ts_init:
            newest[inst.id] = inst
    return list(newest.values())


def history(catalog_path: str, data_cls: type, instrument_id: str, start: pd.Timestamp | None = None,
            end: pd.Timestamp | None = None, limit: int = 0) -> list[Data]:
    """Stored rows of one type and instrument in [start, end] by ts_init, oldest first; the
    newest `limit` if given. Custom data comes unwrapped (the row, not its `CustomData`)."""
    def read() -> list[Data]:
        catalog = ParquetDataCatalog(catalog_path)
        if data_cls is FundingRateUpdate:  # one instrument per query: see messages/nautilus.py
            return query_funding_rates(catalog, [instrument_id], start=start, end=end)
        return [getattr(r, "data", r) for r in catalog.query(data_cls, identifiers=[instrument_id], start=start, end=end)]

    rows = _retry(read)
    return rows[-limit:] if limit else rows


def _retry(read):  # noqa: ANN001, ANN202
    for attempt in range(RETRIES):
        try:
            return read()
        except FileNotFoundError:
            if attempt == RETRIES - 1:
                raise
