"""A `BacktestEngine` set up for a derivs-mesh catalog (shared by the examples in this folder).

`engine_for(catalog)` adds a venue per exchange in the catalog (a margin account funded in its
settlement currencies) and the newest definition of every instrument; the caller adds data and
a strategy. `CATALOG` is the client id custom data is added and subscribed with: its
`CustomData` wrapper has no instrument to route by, so the engine needs a client for it.
"""

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.identifiers import ClientId, InstrumentId, TraderId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog

import messages.nautilus  # noqa: F401 - registers the custom data classes before any query

CATALOG = ClientId("CATALOG")  # any id works: it only names the data client for custom data


def latest_definitions(catalog: ParquetDataCatalog) -> list[Instrument]:
    """One definition per instrument: the catalog keeps every change, the newest wins."""
    latest: dict[InstrumentId, Instrument] = {}
    for instrument in sorted(catalog.instruments(), key=lambda i: i.ts_init):
        latest[instrument.id] = instrument
    return list(latest.values())


def engine_for(catalog: ParquetDataCatalog) -> tuple[BacktestEngine, list[Instrument]]:
    instruments = latest_definitions(catalog)
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("BACKTESTER-001"),
            logging=LoggingConfig(bypass_logging=True),  # keep stdout for the JSON
        ),
    )
    for venue in sorted({i.id.venue for i in instruments}, key=str):
        currencies = {i.settlement_currency for i in instruments if i.id.venue == venue}
        engine.add_venue(
            venue=venue,
            oms_type=OmsType.NETTING,
            account_type=AccountType.MARGIN,
            base_currency=None,
            starting_balances=[Money(1_000_000, c) for c in sorted(currencies, key=str)],
        )
    for instrument in instruments:
        engine.add_instrument(instrument)
    return engine, instruments
