"""Replay a derivs-mesh catalog through a NautilusTrader backtest and count what arrives.

    python examples/backtest_counts.py CATALOG_PATH

prints one JSON object: {"open_interest": {instrument_id: n}, "funding_rate": {instrument_id: n}}.

It shows the three things a strategy needs to use this data:

1. `import messages.nautilus` before querying: it registers the custom data classes.
2. Custom data (`OpenInterest`, `FundingRateInfo`) is added to the engine with a `client_id`
   (its `CustomData` wrapper has no instrument to route by) and subscribed per instrument with
   `subscribe_data(DataType(OpenInterest), client_id=..., instrument_id=...)`; it arrives in
   `on_data`. Funding is Nautilus's own `FundingRateUpdate`: `subscribe_funding_rates(id)`,
   delivered to `on_funding_rate`.
3. Load `FundingRateUpdate` with `messages.nautilus.query_funding_rates` (one query per
   instrument): Nautilus 1.231 takes the instrument id of every row from the first file's
   metadata, so one `catalog.query(FundingRateUpdate)` over several instruments labels all rows
   with one id.
"""

import json
import sys
import warnings

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.data import DataType
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.identifiers import ClientId, InstrumentId, TraderId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from nautilus_trader.trading.strategy import Strategy

from messages.nautilus import FundingRateUpdate, OpenInterest, query_funding_rates

CATALOG = ClientId("CATALOG")  # any id works: it only names the data client for custom data


class CountingStrategy(Strategy):
    """Subscribes to open interest and funding of every instrument and counts the updates."""

    def __init__(self, instrument_ids: list[InstrumentId]) -> None:
        super().__init__()
        self.instrument_ids = instrument_ids
        self.counts: dict[str, dict[str, int]] = {
            "open_interest": {str(i): 0 for i in instrument_ids},
            "funding_rate": {str(i): 0 for i in instrument_ids},
        }

    def on_start(self) -> None:
        for instrument_id in self.instrument_ids:
            self.subscribe_data(
                DataType(OpenInterest), client_id=CATALOG, instrument_id=instrument_id
            )
            self.subscribe_funding_rates(instrument_id)

    def on_data(self, data) -> None:
        if isinstance(data, OpenInterest):
            self.counts["open_interest"][str(data.instrument_id)] += 1

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.counts["funding_rate"][str(funding_rate.instrument_id)] += 1

    def on_stop(self) -> None:
        pass


def latest_definitions(catalog: ParquetDataCatalog) -> list[Instrument]:
    """One definition per instrument: the catalog keeps every change, the newest wins."""
    latest: dict[InstrumentId, Instrument] = {}
    for instrument in sorted(catalog.instruments(), key=lambda i: i.ts_init):
        latest[instrument.id] = instrument
    return list(latest.values())


def run(catalog_path: str) -> dict[str, dict[str, int]]:
    catalog = ParquetDataCatalog(catalog_path)
    instruments = latest_definitions(catalog)
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("BACKTESTER-001"),
            logging=LoggingConfig(bypass_logging=True),  # keep stdout for the JSON
        ),
    )
    # A venue per exchange, funded in its settlement currencies; nothing is traded.
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

    has_data = False
    for instrument in instruments:
        ids = [instrument.id.value]
        open_interest = catalog.query(OpenInterest, identifiers=ids)  # list[CustomData]
        if open_interest:
            engine.add_data(open_interest, client_id=CATALOG, sort=False)
        funding = query_funding_rates(catalog, ids)
        if funding:
            engine.add_data(funding, sort=False)
        has_data = has_data or bool(open_interest or funding)

    strategy = CountingStrategy([i.id for i in instruments])
    engine.add_strategy(strategy)
    if has_data:
        engine.sort_data()
        engine.run()
    engine.dispose()
    return strategy.counts


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=Warning, module="nautilus_trader")
    warnings.filterwarnings("ignore", message=".*utcnow.*")
    print(json.dumps(run(argv[1]), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
