"""Replay a derivs-mesh catalog through a NautilusTrader backtest and count what arrives.

    python examples/backtest_counts.py CATALOG_PATH

prints one JSON object, counts per instrument id:
{"open_interest": {...}, "funding_rate": {...}, "funding_settlement": {...}}
(`funding_rate`: live estimates, Nautilus's `FundingRateUpdate`; `funding_settlement`: settled
funding, `FundingSettlement`).

It shows what a strategy needs to use this data:

1. `import messages.nautilus` before querying: it registers the custom data classes.
2. Custom data (`OpenInterest`, `FundingSettlement`, `FundingRateInfo`) is added to the engine
   with a `client_id` (its `CustomData` wrapper has no instrument to route by) and subscribed per
   instrument with `subscribe_data(DataType(OpenInterest), client_id=..., instrument_id=...)`;
   it arrives in `on_data`. Live funding is Nautilus's own `FundingRateUpdate`:
   `subscribe_funding_rates(id)`, delivered to `on_funding_rate`; settlements are a series of
   their own, so a strategy that books funding never mistakes an estimate for a payment
   (`examples/funding_backtest.py`).
3. Load `FundingRateUpdate` with `messages.nautilus.query_funding_rates` (one query per
   instrument): Nautilus 1.231 takes the instrument id of every row from the first file's
   metadata, so one `catalog.query(FundingRateUpdate)` over several instruments labels all rows
   with one id.
"""

import json
import sys
import warnings

from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from nautilus_trader.trading.strategy import Strategy

from catalog_engine import CATALOG, engine_for
from messages.nautilus import FundingRateUpdate, FundingSettlement, OpenInterest, query_funding_rates


class CountingStrategy(Strategy):
    """Subscribes to open interest, live funding and settlements of every instrument and counts them."""

    def __init__(self, instrument_ids: list[InstrumentId]) -> None:
        super().__init__()
        self.instrument_ids = instrument_ids
        self.counts: dict[str, dict[str, int]] = {
            kind: {str(i): 0 for i in instrument_ids} for kind in ("open_interest", "funding_rate", "funding_settlement")
        }

    def on_start(self) -> None:
        for instrument_id in self.instrument_ids:
            self.subscribe_data(DataType(OpenInterest), client_id=CATALOG, instrument_id=instrument_id)
            self.subscribe_data(DataType(FundingSettlement), client_id=CATALOG, instrument_id=instrument_id)
            self.subscribe_funding_rates(instrument_id)

    def on_data(self, data) -> None:
        if isinstance(data, OpenInterest):
            self.counts["open_interest"][str(data.instrument_id)] += 1
        elif isinstance(data, FundingSettlement):
            self.counts["funding_settlement"][str(data.instrument_id)] += 1

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.counts["funding_rate"][str(funding_rate.instrument_id)] += 1


def run(catalog_path: str) -> dict[str, dict[str, int]]:
    catalog = ParquetDataCatalog(catalog_path)
    engine, instruments = engine_for(catalog)
    has_data = False
    for instrument in instruments:
        ids = [instrument.id.value]
        custom = catalog.query(OpenInterest, identifiers=ids) + catalog.query(FundingSettlement, identifiers=ids)
        if custom:  # list[CustomData]
            engine.add_data(custom, client_id=CATALOG, sort=False)
        funding = query_funding_rates(catalog, ids)
        if funding:
            engine.add_data(funding, sort=False)
        has_data = has_data or bool(custom or funding)

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
