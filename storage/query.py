"""Stored rows of one series, as a pyarrow table with the venue as a column (no venue call).

    from storage.query import read_series, resolve_ids
    ids = resolve_ids("catalog", "oi", "BTC")                # every venue's BTC perpetual with OI
    table = read_series("catalog", "funding", ids, start_ns, end_ns)

Kinds and their directories (`<catalog>/data/<dir>/<instrument id>/`):

- "oi": `custom_open_interest` - open_interest (base units, one side), open_interest_value (USD).
- "funding": `custom_funding_rate_info` - rate per interval, interval_minutes, next_funding_ns,
  predicted_rate, mark/index price, settled; plus `annualized`, `per_8h` and
  `predicted_annualized` (`messages/funding.py`) unless the stored rows carry them already.
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

from storage.coverage import ids_in
from storage.files import list_files, read_files
from storage.gaps import gaps
from storage.schema import FUNDING_RATE_INFO, GAP, LIQUIDATION, OPEN_INTEREST, schema_for
from messages.funding import MINUTES_8H, MINUTES_PER_YEAR

KIND_DIRS: dict[str, str] = {"oi": OPEN_INTEREST, "funding": FUNDING_RATE_INFO, "liquidations": LIQUIDATION, "gaps": GAP}
KINDS = tuple(KIND_DIRS)
# The tag of the same row as an event (`messages.events`): what `--json` calls it everywhere.
EVENT_KINDS = {"oi": "open_interest", "funding": "funding_rate", "liquidations": "liquidation", "gaps": "gap"}
_MS = 1_000_000
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
    for iid in ids_in(catalog_root, _dir(kind)):
        venue = venue_of(iid)
        if venues and venue.lower() not in venues:
            continue
        head = iid.rsplit(".", 1)[0].upper()
        raw = head.removesuffix("-PERP").removesuffix("-LINEAR").removesuffix("-USD")
        base = next((raw.removesuffix(q) for q in _QUOTE_SUFFIXES if raw.endswith(q) and raw != q), raw)
        if wanted in (iid.upper(), head, raw) or (coin is None and wanted == base) or \
                (venue == "HYPERLIQUID" and coin == base):
            out.append(iid)
    return out


def read_series(catalog_root: Path | str, kind: str, instrument_ids: list[str], start_ns: int | None = None,
                end_ns: int | None = None) -> pa.Table:
    """Rows of `kind` of `instrument_ids` in [start_ns, end_ns) (None: open), see the module doc."""
    directory = _dir(kind)
    lo, hi = start_ns or 0, _END if end_ns is None else end_ns - 1
    if kind == "gaps":
        rows = [g for iid in instrument_ids for g in gaps(catalog_root, instrument_id=iid, start_ns=lo, end_ns=hi)]
        table = pa.Table.from_pylist(
            [{"instrument_id": g.instrument_id, "stream": g.stream, "ts_event": g.start_ns, "end_ns": g.end_ns,
              "reason": g.reason} for g in rows],
            schema=pa.schema([("instrument_id", pa.string()), ("stream", pa.string()), ("ts_event", pa.uint64()),
                              ("end_ns", pa.uint64()), ("reason", pa.string())]))
    else:
        parts = []
        for iid in instrument_ids:
            # a file's name bounds its ts_init; a liquidation's ts_init lies within 1 ms after its ts_event
            files = [f for f in list_files(Path(catalog_root) / "data" / directory / iid) if f.start <= hi + _MS and f.end >= lo]
            parts.append(read_files(files, schema_for(directory, iid)))
        table = pa.concat_tables(parts) if parts else schema_for(directory, "").empty_table()
        table = table.drop_columns([c for c in ("type", "ts_init") if c in table.column_names])
        ts = table["ts_event"]
        table = table.filter(pc.and_(pc.greater_equal(ts, pa.scalar(lo, pa.uint64())),
                                     pc.less_equal(ts, pa.scalar(hi, pa.uint64()))))
    if kind == "funding":
        table = _with_common_units(_nulls_for_unpublished(table))
    table = table.add_column(0, "venue", pa.array([venue_of(i) for i in table["instrument_id"].to_pylist()], pa.string()))
    first = ["venue", "instrument_id", "ts_event"]
    table = table.select(first + [c for c in table.column_names if c not in first])
    return table.sort_by([("ts_event", "ascending"), ("instrument_id", "ascending")])


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


def _with_common_units(table: pa.Table) -> pa.Table:
    """Funding in units that compare across venues (messages/funding.py), where not stored already."""
    minutes = pc.cast(table["interval_minutes"], pa.float64())
    derived = {
        "annualized": (table["rate"], MINUTES_PER_YEAR),
        "per_8h": (table["rate"], MINUTES_8H),
        "predicted_annualized": (table["predicted_rate"], MINUTES_PER_YEAR),
    }
    for name, (rate, minutes_per) in derived.items():
        if name not in table.column_names:
            table = table.append_column(name, pc.divide(pc.multiply(rate, minutes_per), minutes))
    return table
