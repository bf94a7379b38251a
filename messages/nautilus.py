"""The catalog's data classes, for NautilusTrader users (`nautilus_trader==1.231.*`).

The mesh's writer stores open interest and funding in a `ParquetDataCatalog` with pyarrow only;
this module is what a *reader* imports. Importing it registers the custom data classes with
Nautilus's serializers (the `@customdataclass` decorator does that), which the catalog needs
before it can decode their files::

    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from messages.nautilus import FundingRateInfo, FundingRateUpdate, FundingSettlement, OpenInterest

    catalog = ParquetDataCatalog("catalog")
    catalog.instruments()                      # CryptoPerpetual definitions
    catalog.query(OpenInterest, identifiers=["BTCUSDT-PERP.BINANCE"])  # list[CustomData]
    query_funding_rates(catalog)               # live FundingRateUpdate of every instrument, each with its id
    query_funding_rates(catalog, ["BTCUSDT-PERP.BINANCE", "BTC-USD-PERP.HYPERLIQUID"], start="2025-01-01")
    catalog.query(FundingRateInfo, start="2025-01-01", end="2025-02-01")
    catalog.query(FundingSettlement, identifiers=["BTCUSDT-PERP.BINANCE"])   # settled funding only

Never `catalog.query(FundingRateUpdate)` over several instruments: Nautilus 1.231 reads the
instrument id of `FundingRateUpdate` from the schema metadata of the *first* file of a query, so
every row of such a query carries one id (a Nautilus bug, with its own `write_data` too; the
custom types carry the id in a column and are not affected). `query_funding_rates` asks one
instrument at a time.

Where things live (`<ID>` is the instrument id, e.g. `BTCUSDT-PERP.BINANCE`):

- `data/crypto_perpetual/<ID>/` - `CryptoPerpetual` definitions (one row per change).
- `data/custom_open_interest/<ID>/` - `OpenInterest` (custom data; `query` wraps each row in
  `CustomData`, the value is `.data`).
- `data/funding_rate_update/<ID>/` - `FundingRateUpdate`: the *live* funding estimates the
  collectors poll (the current period's rate, as NautilusTrader's own live adapters publish it to
  `on_funding_rate`). `rate` comes back as a *string* (`"0.0001"`, Nautilus 1.231 stores it as
  JSON text; use `Decimal(u.rate)`), `interval` in minutes, `next_funding_ns` (None when the
  venue gives none).
- `data/custom_funding_rate_info/<ID>/` - `FundingRateInfo`: the same live rows with what
  `FundingRateUpdate` has no field for (annualized and 8-hour rates, prediction, mark/index price).
- `data/custom_funding_settlement/<ID>/` - `FundingSettlement`: settled funding, one row per
  settlement at its settlement time (`derivs history funding`, the daemon's backfill). Book
  funding payments from these, never from `FundingRateUpdate` (see `examples/funding_backtest.py`).

In a `BacktestEngine`, custom data needs a `client_id` when added, and a strategy subscribes per
instrument (see `examples/backtest_counts.py`)::

    engine.add_data(catalog.query(OpenInterest), client_id=ClientId("CATALOG"))
    # in Strategy.on_start:
    self.subscribe_data(DataType(OpenInterest), client_id=ClientId("CATALOG"), instrument_id=iid)
    self.subscribe_data(DataType(FundingSettlement), client_id=ClientId("CATALOG"), instrument_id=iid)
    self.subscribe_funding_rates(iid)       # -> on_funding_rate(FundingRateUpdate), live estimates

`ts_init` is the catalog's row key and the backtest's replay order; README "Timestamps" says
per type how it relates to `ts_event` (equal, except liquidations and gaps, which add a
sub-millisecond offset so rows of one millisecond stay distinct).

Catalogs written before a column existed: the `from_dict` of `OpenInterest` and
`FundingRateInfo` fills it as `storage/legacy.py` `conform` does (the funding figures exactly,
an old OI row's `source` from its timestamp, `period_s` -1 for history: not recorded), and a
writer opening the catalog rewrites those files once (`storage/upgrade.py`).
"""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from nautilus_trader.core.data import Data
from nautilus_trader.model.custom import customdataclass
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CryptoPerpetual

from storage.legacy import legacy_oi_source, legacy_period_s
from messages.funding import annualized, per_8h

__all__ = ["CryptoPerpetual", "FundingRateInfo", "FundingRateUpdate", "FundingSettlement", "Gap", "Liquidation",
           "OpenInterest", "query_funding_rates"]
FUNDING_RATE_UPDATE_DIR = "funding_rate_update"

# The class names are part of the on-disk contract: Nautilus derives the directory
# (`custom_<snake_case name>`) and the `type` column from them. Fields must stay in step with
# `storage/schema.py` (an extra or missing column breaks decoding); the test suite
# compares both. Subclassing `Data` makes `catalog.query` wrap rows in `CustomData`, which is
# what `BacktestEngine.add_data` and the message bus route.
_NO_INSTRUMENT = InstrumentId.from_str("NONE.NONE")
NAN = float("nan")


def _missing(value: Any) -> bool:
    return value is None


def _row(data: dict[str, Any]) -> dict[str, Any]:
    """A stored row as constructor arguments (what `@customdataclass`'s own from_dict does)."""
    data = {k: v for k, v in data.items() if k not in ("type", "data_type")}
    data["instrument_id"] = InstrumentId.from_str(data["instrument_id"])
    return data


@customdataclass
class OpenInterest(Data):
    """Open interest of one perpetual at `ts_event`.

    - `open_interest`: base-asset units, one side counted; `open_interest_value`: its quote
      (USD) value at the time.
    - `source`: "poll" (the collector asked for the current figure), "history" (a bucket of the
      venue's OI history) or "archive"; `period_s`: 0 for a poll, else the bucket length in
      seconds (300 = 5 minutes; -1 = a history row stored before the field existed).
      Polls and history buckets interleave in one series: filter on `source` for one cadence.
    """

    instrument_id: InstrumentId = _NO_INSTRUMENT
    open_interest: float = 0.0
    open_interest_value: float = 0.0
    source: str = "poll"
    period_s: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OpenInterest":
        data = _row(data)
        if _missing(data.get("source")):  # a file written before the field existed
            data["source"] = legacy_oi_source(data["ts_init"])
        if _missing(data.get("period_s")):
            data["period_s"] = legacy_period_s(data["source"])
        return cls(**data)


@customdataclass
class FundingRateInfo(Data):
    """Funding fields beside Nautilus's `FundingRateUpdate` (same instrument and timestamps):
    live estimates.

    - `rate`: fraction per interval (0.0001 = 0.01 %), as a float.
    - `interval_minutes`: minutes between fundings.
    - `rate_annualized`: `rate` x periods in 365 days (simple, 0.0001 per 8 h = 0.1095);
      `rate_8h`: the same rate over 8 hours, so venues with 1 h, 4 h and 8 h intervals compare.
    - `next_funding_ns`: UNIX ns of the next funding, 0 when unknown.
    - `predicted_rate` (with `predicted_rate_annualized`, `predicted_rate_8h`), `mark_price`,
      `index_price`: NaN where the venue publishes none.
    - `settled`: False (settlements are `FundingSettlement`s); True only in a catalog written
      before they had a series of their own and not opened by a writer since.
    """

    instrument_id: InstrumentId = _NO_INSTRUMENT
    rate: float = 0.0
    interval_minutes: int = 0
    rate_annualized: float = NAN
    rate_8h: float = NAN
    next_funding_ns: int = 0
    predicted_rate: float = NAN
    predicted_rate_annualized: float = NAN
    predicted_rate_8h: float = NAN
    mark_price: float = NAN
    index_price: float = NAN
    settled: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FundingRateInfo":
        data = _row(data)
        for prefix, rate in (("", data["rate"]), ("predicted_", data.get("predicted_rate"))):
            rate = NAN if rate is None else rate
            if _missing(data.get(f"{prefix}rate_annualized")):  # a file written before the field existed
                data[f"{prefix}rate_annualized"] = annualized(rate, data["interval_minutes"])
            if _missing(data.get(f"{prefix}rate_8h")):
                data[f"{prefix}rate_8h"] = per_8h(rate, data["interval_minutes"])
        return cls(**data)


@customdataclass
class FundingSettlement(Data):
    """One settled funding (`data/custom_funding_settlement/<ID>/`): the rate that was paid at
    `ts_event` (= `ts_init`, the settlement time) for the period of `interval_minutes` before it.

    - `rate`: fraction of the position's notional per period; a long pays `rate` x notional (a
      negative rate: receives), a short receives it.
    - `rate_annualized`, `rate_8h`: as in `FundingRateInfo`.
    - `mark_price`: the venue's mark price at settlement where its history gives one (Binance),
      else NaN.

    `to_funding_rate_update()` gives the same settlement as Nautilus's `FundingRateUpdate`, the
    shape Nautilus's `request_funding_rates` answers with for the venues it adapts.
    """

    instrument_id: InstrumentId = _NO_INSTRUMENT
    rate: float = 0.0
    interval_minutes: int = 0
    rate_annualized: float = NAN
    rate_8h: float = NAN
    mark_price: float = NAN

    def to_funding_rate_update(self) -> FundingRateUpdate:
        return FundingRateUpdate(self.instrument_id, Decimal(repr(self.rate)), self.ts_event, self.ts_init,
                                 interval=self.interval_minutes, next_funding_ns=None)


@customdataclass
class Liquidation(Data):
    """One forced liquidation (`data/custom_liquidation/<ID>/`).

    - `side`: the liquidated *position's* side, "LONG" or "SHORT" (venue conventions differ:
      Binance reports the forced order's side, Bybit the position's; both are normalized).
    - `quantity`: base-asset units; `price`: the venue's liquidation price (Binance average fill
      price `ap`, Bybit bankruptcy price `p`); `value`: quantity x price in USD.
    - `ts_event`: venue time (ms precision). `ts_init` = `ts_event` plus a sub-millisecond offset
      derived from (side, price, quantity), so several liquidations in the same millisecond are
      distinct rows (the catalog's natural key is `ts_init`).
    """

    instrument_id: InstrumentId = _NO_INSTRUMENT
    side: str = ""
    quantity: float = 0.0
    price: float = 0.0
    value: float = 0.0


@customdataclass
class Gap(Data):
    """A window in which a stream of this instrument may be missing data (`data/custom_gap/<ID>/`).

    - `stream`: "liquidations", "open_interest" or "funding".
    - `ts_event`: start of the window (UNIX ns); `end_ns`: its end. Data inside it may be
      incomplete: a lost connection, a collector restart, an outbox overflow (`reason`).
    - `ts_init` = `ts_event` plus a sub-millisecond offset per stream (the natural key).
    """

    instrument_id: InstrumentId = _NO_INSTRUMENT
    stream: str = ""
    end_ns: int = 0
    reason: str = ""


def query_funding_rates(catalog: Any, instrument_ids: Iterable[str] | None = None, **query: Any) -> list[FundingRateUpdate]:
    """`FundingRateUpdate` rows of many instruments, each labelled with its own instrument id.

    `catalog` is a `ParquetDataCatalog`; `instrument_ids` default to every instrument with funding
    in it; `query` goes to `catalog.query` as is (`start`, `end`, ...). One query per instrument
    (see the module doc: 1.231 labels a multi-instrument query with one id); rows sorted by ts_init.
    """
    if instrument_ids is None:
        base = f"{str(catalog.path).rstrip('/')}/data/{FUNDING_RATE_UPDATE_DIR}"
        found = catalog.fs.ls(base, detail=False) if catalog.fs.exists(base) else []
        instrument_ids = sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in found)
    rows = [u for iid in instrument_ids for u in catalog.query(FundingRateUpdate, identifiers=[iid], **query)]
    return sorted(rows, key=lambda u: u.ts_init)
