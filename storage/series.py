"""One instrument's stored open interest or funding, filtered by where the rows came from.

    from storage.series import read_series

    read_series("catalog", "oi", "BTCUSDT-PERP.BINANCE", source="history")     # 5-minute buckets only
    read_series("catalog", "oi", "BTCUSDT-PERP.BINANCE", source="poll")        # the collector's polls only
    read_series("catalog", "funding", "BTCUSDT-PERP.BINANCE", source="settled", start_ns=..., end_ns=...)

Returns a pyarrow Table sorted by `ts_init`, from the catalog's files alone (pyarrow, no venue
call, no nautilus import). `source` is one name or several; None = every row.

- "oi" (`data/custom_open_interest/<ID>/`): sources "poll" (the venue's current figure, asked by
  the collector; `period_s` 0), "history" (a bucket of the venue's OI history; `period_s` = its
  length, -1 if stored before the field existed), "archive" (a 5-minute snapshot from a venue's public archive,
  e.g. Binance's data.binance.vision files beyond REST's 30 days; `period_s` its bucket). Polls and history
  buckets stay in one series, as one Nautilus type a strategy subscribes to once; the column
  says which is which.
- "funding": live estimates ("live", `data/custom_funding_rate_info/<ID>/`) and settlements
  ("settled", `data/custom_funding_settlement/<ID>/`) in one table with a `source` and a
  `settled` column and the columns of both (`FUNDING_COLUMNS`; a settlement has no next time,
  prediction or index price: 0 / NaN). A catalog written before settlements had their own
  directory and not opened by a writer since keeps them in the live directory with
  `settled=True`: they are read as settlements all the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from storage.files import list_files, read_files
from storage.paths import data_directory, ids_in
from storage.schema import FUNDING_RATE_INFO, FUNDING_SETTLEMENT, OPEN_INTEREST, schema_for
from messages.events import OI_SOURCES

KINDS = ("oi", "funding")
FUNDING_SOURCES = ("live", "settled")
SOURCES: dict[str, tuple[str, ...]] = {"oi": OI_SOURCES, "funding": FUNDING_SOURCES}
FUNDING_COLUMNS = ("ts_event", "ts_init", "rate", "interval_minutes", "rate_annualized", "rate_8h", "next_funding_ns",
                   "predicted_rate", "predicted_rate_annualized", "predicted_rate_8h", "mark_price", "index_price",
                   "settled", "source")
_ALIASES = {"oi": "oi", "open_interest": "oi", "funding": "funding", "funding_rate": "funding"}


def kind_of(kind: str) -> str:
    try:
        return _ALIASES[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS)}") from None


def sources_of(kind: str, source: str | Iterable[str] | None) -> tuple[str, ...]:
    """The sources asked for, checked against the kind's (a clear error names the bad one)."""
    allowed = SOURCES[kind_of(kind)]
    if source is None:
        return allowed
    wanted = (source,) if isinstance(source, str) else tuple(source)
    for s in wanted:
        if s not in allowed:
            raise ValueError(f"unknown {kind} source {s!r}; expected one of: {', '.join(allowed)}")
    return wanted


def read_directory(catalog_root: Path | str, data_dir: str, instrument_id: str, start_ns: int | None = None,
                   end_ns: int | None = None) -> pa.Table:
    """Rows of `data/<data_dir>/<instrument_id>/` with ts_init in [start_ns, end_ns] (closed; None = open)."""
    directory = data_directory(catalog_root, data_dir, instrument_id)
    lo, hi = start_ns if start_ns is not None else 0, end_ns if end_ns is not None else 2**64 - 1
    files = [f for f in list_files(directory) if f.start <= hi and f.end >= lo]
    table = read_files(files, schema_for(data_dir, instrument_id))
    if table.num_rows and (start_ns is not None or end_ns is not None):
        ts = table["ts_init"]
        table = table.filter(pc.and_(pc.greater_equal(ts, pa.scalar(lo, pa.uint64())),
                                     pc.less_equal(ts, pa.scalar(hi, pa.uint64()))))
    return table


def read_series(catalog_root: Path | str, kind: str, instrument_id: str, start_ns: int | None = None,
                end_ns: int | None = None, source: str | Iterable[str] | None = None) -> pa.Table:
    """Stored rows of one instrument, sorted by ts_init, of the given source(s) (module doc)."""
    kind = kind_of(kind)
    wanted = sources_of(kind, source)
    if kind == "oi":
        table = read_directory(catalog_root, OPEN_INTEREST, instrument_id, start_ns, end_ns)
    else:
        table = _funding(catalog_root, instrument_id, start_ns, end_ns)
    if source is not None and table.num_rows:
        table = table.filter(pc.is_in(table["source"], value_set=pa.array(wanted, pa.string())))
    return table


def _funding(catalog_root: Path | str, instrument_id: str, start_ns: int | None, end_ns: int | None) -> pa.Table:
    live = read_directory(catalog_root, FUNDING_RATE_INFO, instrument_id, start_ns, end_ns)
    settlements = read_directory(catalog_root, FUNDING_SETTLEMENT, instrument_id, start_ns, end_ns)
    n = settlements.num_rows
    settled = pa.table({
        **{c: settlements[c] for c in ("ts_event", "ts_init", "rate", "interval_minutes", "rate_annualized", "rate_8h")},
        "next_funding_ns": pa.array([0] * n, pa.int64()),
        **{c: pa.array([float("nan")] * n, pa.float64())
           for c in ("predicted_rate", "predicted_rate_annualized", "predicted_rate_8h")},
        "mark_price": settlements["mark_price"],
        "index_price": pa.array([float("nan")] * n, pa.float64()),
        "settled": pa.array([True] * n, pa.bool_()),
        "source": pa.array(["settled"] * n, pa.string()),
    })
    if live.num_rows and pc.any(live["settled"]).as_py():  # a catalog from before FundingSettlement
        legacy = pc.and_(live["settled"], pc.invert(pc.is_in(live["ts_init"], value_set=settled["ts_init"])))
        keep = pc.or_(pc.invert(live["settled"]), legacy)
        live = live.filter(keep)
    live = live.append_column("source", pc.if_else(live["settled"], "settled", "live").cast(pa.string()))
    table = pa.concat_tables([live.select(FUNDING_COLUMNS), settled.select(FUNDING_COLUMNS).cast(
        live.select(FUNDING_COLUMNS).schema)])
    return table.sort_by([("ts_init", "ascending"), ("settled", "ascending")])


def instrument_ids(catalog_root: Path | str, kind: str) -> list[str]:
    """Instrument ids with stored rows of `kind`, sorted."""
    dirs = (OPEN_INTEREST,) if kind_of(kind) == "oi" else (FUNDING_RATE_INFO, FUNDING_SETTLEMENT)
    return sorted({i for d in dirs for i in ids_in(catalog_root, d)})
