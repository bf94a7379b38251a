"""Stored rows of one series, as a pyarrow table with the venue as a column (no venue call).

    from storage.query import read_series, resolve_ids
    ids = resolve_ids("catalog", "oi", "BTC")                # every venue's BTC perpetual with OI
    table = read_series("catalog", "funding", ids, start_ns, end_ns)

Kinds and their directories (`<catalog>/data/<dir>/<instrument id>/`):

- "oi": `custom_open_interest` - open_interest (base units, one side), open_interest_value (USD).
- "oi": also `source` ("poll" | "history" | "archive") and `period_s` (`storage/series.py`).
- "funding": live estimates (`custom_funding_rate_info`) and settlements (`custom_funding_settlement`)
  in one table (`storage/series.py`): rate per interval, interval_minutes, `rate_8h`,
  `rate_annualized` (`messages/funding.py`), next_funding_ns, predicted_rate (and its 8 h and
  annualized figures), mark/index price, `settled` and `source` ("live" | "settled").
- "liquidations": `custom_liquidation` - side (of the liquidated position), quantity, price, value.
- "gaps": `custom_gap` - stream, ts_event (start of the window), end_ns, reason.

Every table has `venue`, `instrument_id` and `ts_event` (UNIX ns, uint64) first, then the stored
columns (a column the schema gains later passes through), sorted by (ts_event, instrument_id).
Rows are those with start_ns <= ts_event < end_ns (gaps: whose window meets [start_ns, end_ns)).
Values a venue does not publish are null (stored as NaN or 0).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from storage import series
from storage.coverage import ids_in
from storage.files import list_files, read_files
from storage.gaps import gaps
from storage.schema import FUNDING_RATE_INFO, GAP, LIQUIDATION, OPEN_INTEREST, schema_for
from messages.timeunits import MS

KIND_DIRS: dict[str, str] = {"oi": OPEN_INTEREST, "funding": FUNDING_RATE_INFO, "liquidations": LIQUIDATION, "gaps": GAP}
KINDS = tuple(KIND_DIRS)
# The tag of the same row as an event (`messages.events`): what `--json` calls it everywhere.
EVENT_KINDS = {"oi": "open_interest", "funding": "funding_rate", "liquidations": "liquidation", "gaps": "gap"}
_END = 2**64 - 1
_QUOTE_SUFFIXES = ("USDT", "USDC", "USD")


class UnknownKind(ValueError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS)}")


def _dir(kind: str) -> str:
    if kind not in KIND_DIRS:
        raise UnknownKind(kind)
    return KIND_DIRS[kind]


def venue_of(instrument_id: str) -> str:
    return instrument_id.rsplit(".", 1)[-1]


def resolve_ids(catalog_root: Path | str, kind: str, symbol: str, venues: tuple[str, ...] = ()) -> list[str]:
    """Stored instrument ids of `kind` a user's symbol names; `venues` (lower case) filter.

    A coin (BTC) names its perpetuals on every venue; a venue id (BTCUSDT) or an instrument id
    (BTCUSDT-PERP, BTCUSDT-PERP.BINANCE) names that one, and on Hyperliquid (quoted in USD) the
    coin's (as the Hyperliquid adapter resolves DOGEUSDT to DOGE).
    """
    wanted = symbol.strip().upper()
    coin = next((wanted.removesuffix(q) for q in _QUOTE_SUFFIXES if wanted.endswith(q) and wanted != q), None)
    out = []
    stored = series.instrument_ids(catalog_root, kind) if kind in series.KINDS else ids_in(catalog_root, _dir(kind))
    for iid in stored:
        venue = venue_of(iid)
        if venues and venue.lower() not in venues:
            continue
        head = iid.rsplit(".", 1)[0].upper()
        raw = head.removesuffix("-PERP").removesuffix("-LINEAR").removesuffix("-USD")
        base = next((raw.removesuffix(q) for q in _QUOTE_SUFFIXES if raw.endswith(q) and raw != q), raw)
        if wanted in (iid.upper(), head, raw) or (coin is None and wanted == base) or \
                (coin == base and raw == base):  # an id without a quote currency (Hyperliquid's coins)
            out.append(iid)
    return out


def read_series(catalog_root: Path | str, kind: str, instrument_ids: list[str], start_ns: int | None = None,
                end_ns: int | None = None, source: str | None = None) -> pa.Table:
    """Rows of `kind` of `instrument_ids` in [start_ns, end_ns) (None: open), see the module doc.
    `source` (oi and funding only): the rows of that origin (`storage.series.sources_of`)."""
    directory = _dir(kind)
    if source is not None and kind not in series.KINDS:
        raise ValueError(f"--source applies to oi and funding, not to {kind}")
    lo, hi = start_ns or 0, _END if end_ns is None else end_ns - 1
    if kind == "gaps":
        rows = [g for iid in instrument_ids for g in gaps(catalog_root, instrument_id=iid, start_ns=lo, end_ns=hi)]
        table = pa.Table.from_pylist(
            [{"instrument_id": g.instrument_id, "stream": g.stream, "ts_event": g.start_ns, "end_ns": g.end_ns,
              "reason": g.reason} for g in rows],
            schema=pa.schema([("instrument_id", pa.string()), ("stream", pa.string()), ("ts_event", pa.uint64()),
                              ("end_ns", pa.uint64()), ("reason", pa.string())]))
    elif kind in series.KINDS:  # stored rows have ts_init = ts_event
        series.sources_of(kind, source)  # an unknown source: ValueError naming the valid ones
        parts = [_with_id(series.read_series(catalog_root, kind, iid, lo, hi, source), iid)
                 for iid in instrument_ids or ["-"]]
        table = pa.concat_tables(parts, promote_options="default")
        if not instrument_ids:
            table = table.slice(0, 0)
    else:
        parts = []
        for iid in instrument_ids:
            # a file's name bounds its ts_init; a liquidation's ts_init lies within 1 ms after its ts_event
            files = [f for f in list_files(Path(catalog_root) / "data" / directory / iid) if f.start <= hi + MS and f.end >= lo]
            parts.append(read_files(files, schema_for(directory, iid)))
        table = pa.concat_tables(parts) if parts else schema_for(directory, "").empty_table()
        ts = table["ts_event"]
        table = table.filter(pc.and_(pc.greater_equal(ts, pa.scalar(lo, pa.uint64())),
                                     pc.less_equal(ts, pa.scalar(hi, pa.uint64()))))
    table = table.drop_columns([c for c in ("type", "ts_init") if c in table.column_names])
    if kind == "funding":
        table = _nulls_for_unpublished(table)
    table = table.add_column(0, "venue", pa.array([venue_of(i) for i in table["instrument_id"].to_pylist()], pa.string()))
    first = ["venue", "instrument_id", "ts_event"]
    table = table.select(first + [c for c in table.column_names if c not in first])
    return table.sort_by([("ts_event", "ascending"), ("instrument_id", "ascending")])


def _with_id(table: pa.Table, instrument_id: str) -> pa.Table:
    if "instrument_id" in table.column_names:
        return table
    return table.add_column(0, "instrument_id", pa.array([instrument_id] * table.num_rows, pa.string()))


def _nulls_for_unpublished(table: pa.Table) -> pa.Table:
    """NaN (not published) -> null; next_funding_ns 0 (unknown) -> null."""
    for name in table.column_names:
        column = table[name]
        if pa.types.is_floating(column.type):
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
        elif name == "next_funding_ns":
            column = pc.if_else(pc.equal(column, 0), pa.scalar(None, column.type), column)
        else:
            continue
        table = table.set_column(table.column_names.index(name), name, column)
    return table
