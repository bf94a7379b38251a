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

Files written before those columns existed are read through `storage/legacy.py`'s `conform`.
How a batch of events is grouped into these tables: `storage/batches.py`.
"""

from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec
import pyarrow as pa

from messages.events import FundingRate, Gap, Instrument, Liquidation, OpenInterest
from messages.funding import annualized, per_8h
from storage.slots import ts_init_of

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
