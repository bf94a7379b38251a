"""Events -> Arrow tables in the exact layout `nautilus_trader==1.231` reads (pure, pyarrow only).

Nothing here imports nautilus_trader (it costs ~1 s and ~300 MB RSS in the writer). The schemas
mirror what Nautilus's own `ParquetDataCatalog.write_data` produces; `tests/nautilus/` writes
the same objects with Nautilus and compares, so drift in a Nautilus upgrade is caught.

Verified against 1.231.0:

- Custom data (`@customdataclass`): columns = the class fields, then `type` (the class name),
  `ts_event`, `ts_init`; no schema metadata. Nautilus writes int64 timestamps for these; we write
  uint64 like every built-in type (design §4: 1.x reads both, the 2.x migration tool only
  uint64) - the catalog casts, decodes and filters on them unchanged.
- `FundingRateUpdate`: `rate` is the Decimal as a JSON string in a binary column (`b'"0.0001"'`),
  `interval` uint16 (minutes, nullable), `next_funding_ns` uint64 (nullable), ts uint64 not
  null; the instrument id lives only in the schema metadata (`instrument_id`).
- `CryptoPerpetual`: Nautilus's instrument schema (dictionary-encoded strings), metadata
  `class=CryptoPerpetual`, `info` as JSON bytes.

Series (issue 15): a live funding estimate becomes a `FundingRateUpdate` row and a
`FundingRateInfo` row; a settled funding row becomes a `FundingSettlement` row only. Every funding
row carries `rate_annualized` and `rate_8h` (`messages/funding.py`) beside `rate` and
`interval_minutes`; every open-interest row its `source` and `period_s`.

Files written before those columns existed are read through `conform` (`storage/files.py`
`read_files`), which derives them: the funding figures exactly from `rate` and the interval; an
open-interest row's `source` from its timestamp (on the 5-minute grid: "history", else "poll", the
rule the catalog used before) with `period_s` 0 for a poll and -1 ("not recorded") for history.
`storage/upgrade.py` rewrites such files once, when a writer opens the catalog.
"""

import hashlib
from collections.abc import Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec
import pyarrow as pa

from messages.events import AnyEvent, FundingRate, Gap, Instrument, Liquidation, OpenInterest
from messages.funding import annualized, per_8h

# Directory names under `data/` (Nautilus: `class_to_filename`, `custom_` prefix for custom data).
OPEN_INTEREST = "custom_open_interest"
FUNDING_RATE_UPDATE = "funding_rate_update"
FUNDING_RATE_INFO = "custom_funding_rate_info"
FUNDING_SETTLEMENT = "custom_funding_settlement"
CRYPTO_PERPETUAL = "crypto_perpetual"
LIQUIDATION = "custom_liquidation"
GAP = "custom_gap"
KINDS = (OPEN_INTEREST, FUNDING_RATE_UPDATE, FUNDING_RATE_INFO, FUNDING_SETTLEMENT, CRYPTO_PERPETUAL, LIQUIDATION, GAP)

_TS = [pa.field("ts_event", pa.uint64()), pa.field("ts_init", pa.uint64())]

OPEN_INTEREST_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string()),
        pa.field("open_interest", pa.float64()),
        pa.field("open_interest_value", pa.float64()),
        pa.field("source", pa.string()),  # "poll" | "history" | "archive" (messages.events.OI_SOURCES)
        pa.field("period_s", pa.int64()),  # 0 for a poll, the bucket length otherwise; -1: not recorded
        pa.field("type", pa.string()),
        *_TS,
    ]
)

LIQUIDATION_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string()),
        pa.field("side", pa.string()),
        pa.field("quantity", pa.float64()),
        pa.field("price", pa.float64()),
        pa.field("value", pa.float64()),
        pa.field("type", pa.string()),
        *_TS,
    ]
)

GAP_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string()),
        pa.field("stream", pa.string()),
        pa.field("end_ns", pa.uint64()),
        pa.field("reason", pa.string()),
        pa.field("type", pa.string()),
        *_TS,
    ]
)

FUNDING_RATE_INFO_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string()),
        pa.field("rate", pa.float64()),
        pa.field("interval_minutes", pa.int64()),
        pa.field("rate_annualized", pa.float64()),
        pa.field("rate_8h", pa.float64()),
        pa.field("next_funding_ns", pa.int64()),
        pa.field("predicted_rate", pa.float64()),
        pa.field("predicted_rate_annualized", pa.float64()),
        pa.field("predicted_rate_8h", pa.float64()),
        pa.field("mark_price", pa.float64()),
        pa.field("index_price", pa.float64()),
        pa.field("settled", pa.bool_()),
        pa.field("type", pa.string()),
        *_TS,
    ]
)

FUNDING_SETTLEMENT_SCHEMA = pa.schema(
    [
        pa.field("instrument_id", pa.string()),
        pa.field("rate", pa.float64()),
        pa.field("interval_minutes", pa.int64()),
        pa.field("rate_annualized", pa.float64()),
        pa.field("rate_8h", pa.float64()),
        pa.field("mark_price", pa.float64()),
        pa.field("type", pa.string()),
        *_TS,
    ]
)

# `serialization/arrow/schema.py` NAUTILUS_ARROW_SCHEMA[FundingRateUpdate]; metadata per table.
FUNDING_RATE_UPDATE_SCHEMA = pa.schema(
    [
        pa.field("rate", pa.binary(), nullable=False),
        pa.field("interval", pa.uint16()),
        pa.field("next_funding_ns", pa.uint64()),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ]
)

_DICT16 = pa.dictionary(pa.int16(), pa.string())
# `serialization/arrow/implementations/instruments.py` SCHEMAS[CryptoPerpetual].
CRYPTO_PERPETUAL_SCHEMA = pa.schema(
    [
        pa.field("id", pa.dictionary(pa.int64(), pa.string())),
        pa.field("raw_symbol", pa.string()),
        pa.field("base_currency", _DICT16),
        pa.field("quote_currency", _DICT16),
        pa.field("settlement_currency", _DICT16),
        pa.field("is_inverse", pa.bool_()),
        pa.field("price_precision", pa.uint8()),
        pa.field("size_precision", pa.uint8()),
        pa.field("price_increment", _DICT16),
        pa.field("size_increment", _DICT16),
        pa.field("multiplier", _DICT16),
        pa.field("lot_size", _DICT16),
        pa.field("max_quantity", _DICT16),
        pa.field("min_quantity", _DICT16),
        pa.field("max_notional", _DICT16),
        pa.field("min_notional", _DICT16),
        pa.field("max_price", _DICT16),
        pa.field("min_price", _DICT16),
        pa.field("margin_init", pa.string()),
        pa.field("margin_maint", pa.string()),
        pa.field("maker_fee", pa.string()),
        pa.field("taker_fee", pa.string()),
        pa.field("info", pa.binary()),
        *_TS,
    ],
    metadata={"class": "CryptoPerpetual"},
)

SCHEMAS: dict[str, pa.Schema] = {
    OPEN_INTEREST: OPEN_INTEREST_SCHEMA,
    FUNDING_RATE_UPDATE: FUNDING_RATE_UPDATE_SCHEMA,
    FUNDING_RATE_INFO: FUNDING_RATE_INFO_SCHEMA,
    FUNDING_SETTLEMENT: FUNDING_SETTLEMENT_SCHEMA,
    CRYPTO_PERPETUAL: CRYPTO_PERPETUAL_SCHEMA,
    LIQUIDATION: LIQUIDATION_SCHEMA,
    GAP: GAP_SCHEMA,
}

# Columns that are row identity or bookkeeping, not content (instrument change detection).
TS_COLUMNS = ("ts_event", "ts_init")
NAN = float("nan")


def schema_for(kind: str, instrument_id: str) -> pa.Schema:
    """The schema of a file in `data/<kind>/<instrument_id>/` (funding: id in the metadata)."""
    if kind == FUNDING_RATE_UPDATE:
        return FUNDING_RATE_UPDATE_SCHEMA.with_metadata({"instrument_id": instrument_id})
    return SCHEMAS[kind]


# -- files written before a column existed --------------------------------------------------------

LEGACY_GRID_NS = 300 * 1_000_000_000  # history rows sat on the 5-minute grid, polls on the venue's clock
PERIOD_NOT_RECORDED = -1


def legacy_oi_source(ts_init: int) -> str:
    """`source` of an open-interest row stored before the column existed."""
    return "history" if ts_init % LEGACY_GRID_NS == 0 else "poll"


def legacy_period_s(source: str) -> int:
    """`period_s` of an open-interest row stored before the column existed."""
    return 0 if source == "poll" else PERIOD_NOT_RECORDED


def _legacy_source(t: pa.Table) -> pa.Array:
    return pa.array([legacy_oi_source(ts) for ts in t["ts_init"].to_pylist()], pa.string())


def _legacy_period(t: pa.Table) -> pa.Array:
    sources = t["source"].to_pylist() if "source" in t.column_names else _legacy_source(t).to_pylist()
    return pa.array([legacy_period_s(s) for s in sources], pa.int64())


def _derived(fn, rate_column: str):  # noqa: ANN001, ANN202
    def column(t: pa.Table) -> pa.Array:
        rates, minutes = t[rate_column].to_pylist(), t["interval_minutes"].to_pylist()
        return pa.array([fn(r if r is not None else NAN, m) for r, m in zip(rates, minutes, strict=True)], pa.float64())
    return column


# How a column that an older file lacks is derived from the columns it has.
LEGACY_COLUMNS = {
    "rate_annualized": _derived(annualized, "rate"),
    "rate_8h": _derived(per_8h, "rate"),
    "predicted_rate_annualized": _derived(annualized, "predicted_rate"),
    "predicted_rate_8h": _derived(per_8h, "predicted_rate"),
    "source": _legacy_source,
    "period_s": _legacy_period,
}


def lacks_columns(names: Iterable[str], schema: pa.Schema) -> list[str]:
    """Columns of `schema` that a file with columns `names` does not have."""
    have = set(names)
    return [n for n in schema.names if n not in have]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` (a stored file's rows) in `schema`: columns in order, cast (Nautilus writes int64
    timestamps), and a column an older file lacks derived by `LEGACY_COLUMNS`."""
    for name in lacks_columns(table.column_names, schema):
        if name not in LEGACY_COLUMNS:
            raise ValueError(f"a stored file lacks column {name!r}, which cannot be derived")
        table = table.append_column(name, LEGACY_COLUMNS[name](table))
    return table.select(schema.names).cast(schema)


# -- conversions --------------------------------------------------------------------------------


@lru_cache(maxsize=65_536)  # rates repeat a lot; Decimal formatting is the costly part
def rate_json(rate: float) -> bytes:
    """The funding rate as Nautilus stores `FundingRateUpdate.rate`: `Decimal(repr(rate))` as JSON.

    repr() is the shortest string that round-trips the float, so `0.0001` is stored as
    `"0.0001"`, exactly what Nautilus writes for `Decimal("0.0001")`.
    """
    return msgspec.json.encode(str(Decimal(repr(float(rate)))))


def open_interest_table(events: list[OpenInterest], instrument_id: str) -> pa.Table:
    """Rows for `data/custom_open_interest/<id>/`; `events` sorted, one instrument."""
    ts = [e.ts_event for e in events]
    n = len(events)
    return pa.table(
        [
            pa.array([instrument_id] * n, pa.string()),
            pa.array([e.open_interest for e in events], pa.float64()),
            pa.array([e.open_interest_value for e in events], pa.float64()),
            pa.array([e.source for e in events], pa.string()),
            pa.array([e.period_s for e in events], pa.int64()),
            pa.array(["OpenInterest"] * n, pa.string()),
            pa.array(ts, pa.uint64()),
            pa.array(ts, pa.uint64()),
        ],
        schema=OPEN_INTEREST_SCHEMA,
    )


def liquidation_ts_init(e: Liquidation) -> int:
    """The stored `ts_init` of a liquidation: `ts_event` + a sub-millisecond offset.

    The catalog's natural key is (instrument_id, ts_init) (`catalog_files.merge_tables`), but a
    cascade has several liquidations in one venue millisecond. The offset (0..999_999 ns) is a
    stable hash of (side, price, quantity), so distinct liquidations of one millisecond get
    distinct keys, a re-sent liquidation gets the same key (idempotent), and rows stay in event
    order at ms precision. Two different liquidations can still hash alike (1 in 10^6 per pair
    in one ms: at 2,000/s about once in half an hour, found by the soak): this is only the first
    slot tried; `next_slot` gives the others (linear probing, in `group_events` and against the
    stored rows in `catalog_files.place_distinct`).
    """
    return liquidation_row_slot({"ts_event": e.ts_event, "side": e.side, "price": e.price, "quantity": e.quantity})


def liquidation_row_slot(row: dict) -> int:
    """`liquidation_ts_init` of a stored row (a dict of LIQUIDATION_SCHEMA's columns)."""
    return row["ts_event"] + _sub_ms_offset(f"{row['side']}|{row['price']!r}|{row['quantity']!r}")


def next_slot(ts_init: int) -> int:
    """The next ts_init to try for a liquidation whose slot holds another: +1 ns, inside its ms."""
    return ts_init - ts_init % 1_000_000 + (ts_init + 1) % 1_000_000


def liquidation_content(e: Liquidation) -> tuple:
    """What makes two liquidations of one instrument the same (the columns besides the keys)."""
    return (e.side, e.quantity, e.price, e.value, e.ts_event)


def _sub_ms_offset(text: str) -> int:
    """A stable 0..999_999 ns offset from `text` (keeps distinct rows of one ms distinct)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % 1_000_000


def ts_init_of(e: AnyEvent) -> int:
    """The stored `ts_init` (the catalog's natural key with the instrument id) of an event."""
    if type(e) is Liquidation:
        return liquidation_ts_init(e)
    if type(e) is Gap:  # gaps of different streams may start in the same ms
        return e.ts_event + _sub_ms_offset(e.stream)
    return e.ts_event


def gap_table(events: list[Gap], instrument_id: str) -> pa.Table:
    """Rows for `data/custom_gap/<id>/`; `events` sorted by `ts_init_of`."""
    n = len(events)
    return pa.table(
        [
            pa.array([instrument_id] * n, pa.string()),
            pa.array([e.stream for e in events], pa.string()),
            pa.array([e.end_ns for e in events], pa.uint64()),
            pa.array([e.reason for e in events], pa.string()),
            pa.array(["Gap"] * n, pa.string()),
            pa.array([e.ts_event for e in events], pa.uint64()),
            pa.array([ts_init_of(e) for e in events], pa.uint64()),
        ],
        schema=GAP_SCHEMA,
    )


def liquidation_table(events: list[Liquidation], instrument_id: str, ts_init: list[int]) -> pa.Table:
    """Rows for `data/custom_liquidation/<id>/`; `events` sorted by their slots `ts_init`."""
    n = len(events)
    return pa.table(
        [
            pa.array([instrument_id] * n, pa.string()),
            pa.array([e.side for e in events], pa.string()),
            pa.array([e.quantity for e in events], pa.float64()),
            pa.array([e.price for e in events], pa.float64()),
            pa.array([e.value for e in events], pa.float64()),
            pa.array(["Liquidation"] * n, pa.string()),
            pa.array([e.ts_event for e in events], pa.uint64()),
            pa.array(ts_init, pa.uint64()),
        ],
        schema=LIQUIDATION_SCHEMA,
    )


def funding_rate_update_table(events: list[FundingRate], instrument_id: str) -> pa.Table:
    """Rows for `data/funding_rate_update/<id>/` (Nautilus's built-in `FundingRateUpdate`)."""
    ts = [e.ts_event for e in events]
    return pa.table(
        [
            pa.array([rate_json(e.rate) for e in events], pa.binary()),
            pa.array([e.interval_minutes for e in events], pa.uint16()),
            pa.array([e.next_funding_ns for e in events], pa.uint64()),
            pa.array(ts, pa.uint64()),
            pa.array(ts, pa.uint64()),
        ],
        schema=schema_for(FUNDING_RATE_UPDATE, instrument_id),
    )


def _or_nan(value: float | None) -> float:
    return NAN if value is None else value


def _per(fn, events: list[FundingRate], predicted: bool = False) -> pa.Array:  # noqa: ANN001
    """`annualized` or `per_8h` of each event's rate (or predicted rate: NaN where there is none)."""
    return pa.array([fn(_or_nan(e.predicted_rate) if predicted else e.rate, e.interval_minutes) for e in events],
                    pa.float64())


def funding_rate_info_table(events: list[FundingRate], instrument_id: str) -> pa.Table:
    """Rows for `data/custom_funding_rate_info/<id>/`: funding fields Nautilus has no slot for."""
    ts = [e.ts_event for e in events]
    n = len(events)
    return pa.table(
        [
            pa.array([instrument_id] * n, pa.string()),
            pa.array([e.rate for e in events], pa.float64()),
            pa.array([e.interval_minutes for e in events], pa.int64()),
            _per(annualized, events),
            _per(per_8h, events),
            pa.array([e.next_funding_ns or 0 for e in events], pa.int64()),
            pa.array([_or_nan(e.predicted_rate) for e in events], pa.float64()),
            _per(annualized, events, predicted=True),
            _per(per_8h, events, predicted=True),
            pa.array([_or_nan(e.mark_price) for e in events], pa.float64()),
            pa.array([_or_nan(e.index_price) for e in events], pa.float64()),
            pa.array([e.settled for e in events], pa.bool_()),
            pa.array(["FundingRateInfo"] * n, pa.string()),
            pa.array(ts, pa.uint64()),
            pa.array(ts, pa.uint64()),
        ],
        schema=FUNDING_RATE_INFO_SCHEMA,
    )


def funding_settlement_table(events: list[FundingRate], instrument_id: str) -> pa.Table:
    """Rows for `data/custom_funding_settlement/<id>/`: settled funding, one row per settlement
    (`ts_event` = `ts_init` = the settlement time)."""
    ts = [e.ts_event for e in events]
    n = len(events)
    return pa.table(
        [
            pa.array([instrument_id] * n, pa.string()),
            pa.array([e.rate for e in events], pa.float64()),
            pa.array([e.interval_minutes for e in events], pa.int64()),
            _per(annualized, events),
            _per(per_8h, events),
            pa.array([_or_nan(e.mark_price) for e in events], pa.float64()),
            pa.array(["FundingSettlement"] * n, pa.string()),
            pa.array(ts, pa.uint64()),
            pa.array(ts, pa.uint64()),
        ],
        schema=FUNDING_SETTLEMENT_SCHEMA,
    )


def crypto_perpetual_row(e: Instrument) -> dict[str, Any]:
    """One `CryptoPerpetual` row, as Nautilus's `CryptoPerpetual.to_dict` would produce it.

    The event already holds every value as Nautilus's own adapter prints it (`Instrument`), so
    the strings pass through unchanged; min/max notional are Money in the quote currency
    ("5 USDT"). `info` keeps what Nautilus has no field for (the ccxt symbol, max leverage).
    """
    info: dict[str, Any] = {"symbol": e.symbol}
    if e.max_leverage is not None:
        info["max_leverage"] = e.max_leverage
    money = lambda amount: None if amount is None else f"{amount} {e.quote}"  # noqa: E731
    return {
        "id": e.instrument_id,
        "raw_symbol": e.raw_symbol,
        "base_currency": e.base,
        "quote_currency": e.quote,
        "settlement_currency": e.settle,
        "is_inverse": False,
        "price_precision": e.price_precision,
        "size_precision": e.size_precision,
        "price_increment": e.price_increment,
        "size_increment": e.size_increment,
        "multiplier": e.multiplier,
        "lot_size": e.lot_size,
        "max_quantity": e.max_quantity,
        "min_quantity": e.min_quantity,
        "max_notional": money(e.max_notional),
        "min_notional": money(e.min_notional),
        "max_price": e.max_price,
        "min_price": e.min_price,
        "margin_init": e.margin_init,
        "margin_maint": e.margin_maint,
        "maker_fee": e.maker_fee,
        "taker_fee": e.taker_fee,
        "info": msgspec.json.encode(info),
        "ts_event": e.ts_event,
        "ts_init": e.ts_event,
    }


def crypto_perpetual_table(events: list[Instrument]) -> pa.Table:
    """Rows for `data/crypto_perpetual/<id>/` (small: from_pylist like Nautilus itself)."""
    rows = [crypto_perpetual_row(e) for e in events]
    return pa.Table.from_pylist(rows, schema=CRYPTO_PERPETUAL_SCHEMA)


# -- batching -----------------------------------------------------------------------------------


SETTLEMENT_SERIES = "FundingSettlement"


def series_of(event: AnyEvent) -> str:
    """The stored series an event belongs to: its class name, except that settled funding is a
    series of its own (a live estimate and a settlement of the same instant are two rows)."""
    if type(event) is FundingRate and event.settled:
        return SETTLEMENT_SERIES
    return type(event).__name__


def group_events(events: Iterable[AnyEvent]) -> dict[tuple[str, str], dict[int, AnyEvent]]:
    """Events per (series, instrument id), as {ts_init: event} sorted by ts_init.

    The natural key of a stored row is (instrument_id, ts_init), so of two events with the same
    key the later one in `events` wins (a re-fetch corrects a row). Liquidations never change:
    a different one on a taken slot is another liquidation and tries the next slot.
    """
    latest: dict[tuple[str, str], dict[int, AnyEvent]] = {}
    for event in events:
        by_ts = latest.setdefault((series_of(event), event.instrument_id), {})
        slot = ts_init_of(event)
        if type(event) is Liquidation:
            while slot in by_ts and liquidation_content(by_ts[slot]) != liquidation_content(event):
                slot = next_slot(slot)
        by_ts[slot] = event
    return {key: dict(sorted(by_ts.items())) for key, by_ts in latest.items()}


def group_tables(series: str, instrument_id: str, by_ts: dict[int, AnyEvent]) -> dict[tuple[str, str], pa.Table]:
    """The tables of one `group_events` group, keyed by (directory kind, instrument id). A live
    funding estimate becomes a row in both `funding_rate_update` and `custom_funding_rate_info`,
    a settlement a row in `custom_funding_settlement`."""
    group = list(by_ts.values())
    if series == OpenInterest.__name__:
        return {(OPEN_INTEREST, instrument_id): open_interest_table(group, instrument_id)}
    if series == FundingRate.__name__:
        return {(FUNDING_RATE_UPDATE, instrument_id): funding_rate_update_table(group, instrument_id),
                (FUNDING_RATE_INFO, instrument_id): funding_rate_info_table(group, instrument_id)}
    if series == SETTLEMENT_SERIES:
        return {(FUNDING_SETTLEMENT, instrument_id): funding_settlement_table(group, instrument_id)}
    if series == Instrument.__name__:
        return {(CRYPTO_PERPETUAL, instrument_id): crypto_perpetual_table(group)}
    if series == Liquidation.__name__:
        return {(LIQUIDATION, instrument_id): liquidation_table(group, instrument_id, list(by_ts))}
    if series == Gap.__name__:
        return {(GAP, instrument_id): gap_table(group, instrument_id)}
    raise TypeError(f"the catalog stores no {series} events")


def build_tables(events: Iterable[AnyEvent]) -> dict[tuple[str, str], pa.Table]:
    """All tables a batch of events becomes, keyed by (directory kind, instrument id).

    One table per kind and instrument, rows sorted by ts_init with unique ts_init.
    """
    tables: dict[tuple[str, str], pa.Table] = {}
    for (series, instrument_id), by_ts in group_events(events).items():
        tables.update(group_tables(series, instrument_id, by_ts))
    return tables
