"""The catalog's data classes, for NautilusTrader users (`nautilus_trader==1.231.*`).

The mesh's writer stores open interest and funding in a `ParquetDataCatalog` with pyarrow only;
this module is what a *reader* imports. Importing it registers the two custom data classes with
Nautilus's serializers (the `@customdataclass` decorator does that), which the catalog needs
before it can decode their files::

    from nautilus_trader.persistence.catalog import ParquetDataCatalog
    from messages.nautilus import FundingRateInfo, FundingRateUpdate, OpenInterest

    catalog = ParquetDataCatalog("catalog")
    catalog.instruments()                      # CryptoPerpetual definitions
    catalog.query(OpenInterest, identifiers=["BTCUSDT-PERP.BINANCE"])  # list[CustomData]
    query_funding_rates(catalog)               # FundingRateUpdate of every instrument, each with its id
    query_funding_rates(catalog, ["BTCUSDT-PERP.BINANCE", "BTC-USD-PERP.HYPERLIQUID"], start="2025-01-01")
    catalog.query(FundingRateInfo, start="2025-01-01", end="2025-02-01")

Never `catalog.query(FundingRateUpdate)` over several instruments: Nautilus 1.231 reads the
instrument id of `FundingRateUpdate` from the schema metadata of the *first* file of a query, so
every row of such a query carries one id (a Nautilus bug, with its own `write_data` too; the
custom types carry the id in a column and are not affected). `query_funding_rates` asks one
instrument at a time.

Where things live (`<ID>` is the instrument id, e.g. `BTCUSDT-PERP.BINANCE`):

- `data/crypto_perpetual/<ID>/` - `CryptoPerpetual` definitions (one row per change).
- `data/custom_open_interest/<ID>/` - `OpenInterest` (custom data; `query` wraps each row in
  `CustomData`, the value is `.data`).
- `data/funding_rate_update/<ID>/` - `FundingRateUpdate`: `rate` comes back as a *string*
  (`"0.0001"`, Nautilus 1.231 stores it as JSON text; use `Decimal(u.rate)`), `interval` in
  minutes, `next_funding_ns` (None when the venue gives none).
- `data/custom_funding_rate_info/<ID>/` - `FundingRateInfo`: the same funding rows with what
  `FundingRateUpdate` has no field for (prediction, mark/index price, settled flag).

In a `BacktestEngine`, custom data needs a `client_id` when added, and a strategy subscribes per
instrument (see `examples/backtest_counts.py`)::

    engine.add_data(catalog.query(OpenInterest), client_id=ClientId("CATALOG"))
    # in Strategy.on_start:
    self.subscribe_data(DataType(OpenInterest), client_id=ClientId("CATALOG"), instrument_id=iid)
    self.subscribe_funding_rates(iid)       # -> on_funding_rate(FundingRateUpdate)

Stored rows have `ts_init == ts_event` (venue time where the venue gives one), so a backtest
replays them in event time.
"""

from collections.abc import Iterable
from typing import Any

from nautilus_trader.core.data import Data
from nautilus_trader.model.custom import customdataclass
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CryptoPerpetual

__all__ = ["CryptoPerpetual", "FundingRateInfo", "FundingRateUpdate", "Gap", "Liquidation", "OpenInterest",
           "query_funding_rates"]
FUNDING_RATE_UPDATE_DIR = "funding_rate_update"

# The class names are part of the on-disk contract: Nautilus derives the directory
# (`custom_<snake_case name>`) and the `type` column from them. Fields must stay in step with
# `catalog/schema.py` (an extra or missing column breaks decoding); the test suite
# compares both. Subclassing `Data` makes `catalog.query` wrap rows in `CustomData`, which is
# what `BacktestEngine.add_data` and the message bus route.
_NO_INSTRUMENT = InstrumentId.from_str("NONE.NONE")


@customdataclass
class OpenInterest(Data):
    """Open interest of one perpetual at `ts_event`.

    `open_interest` is in base-asset units, one side counted; `open_interest_value` is its
    quote (USD) value at the time.
    """

    instrument_id: InstrumentId = _NO_INSTRUMENT
    open_interest: float = 0.0
    open_interest_value: float = 0.0


@customdataclass
class FundingRateInfo(Data):
    """Funding fields beside Nautilus's `FundingRateUpdate` (same instrument and timestamps).

    - `rate`: fraction per interval (0.0001 = 0.01 %), as a float.
    - `interval_minutes`: minutes between fundings.
    - `next_funding_ns`: UNIX ns of the next funding, 0 when unknown.
    - `predicted_rate`, `mark_price`, `index_price`: NaN where the venue publishes none.
    - `settled`: True for a settled (historical) rate, False for a live estimate.
    """

    instrument_id: InstrumentId = _NO_INSTRUMENT
    rate: float = 0.0
    interval_minutes: int = 0
    next_funding_ns: int = 0
    predicted_rate: float = float("nan")
    mark_price: float = float("nan")
    index_price: float = float("nan")
    settled: bool = False


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
