"""Book the funding a position pays or earns, from the settlements in a derivs-mesh catalog.

    python examples/funding_backtest.py CATALOG_PATH [--notional 10000] [--side long|short]

A NautilusTrader backtest replays the catalog's settled funding (`FundingSettlement`, one row per
settlement) and its live estimates (`FundingRateUpdate`); the strategy holds a position of
`--notional` (quote currency, USD) in every instrument from the start, and at each settlement
books the payment

    payment = -notional x rate   (a long; a short receives what a long pays)

i.e. a long pays a positive rate and is paid a negative one. Live estimates arrive in
`on_funding_rate` but are never booked: they are the venue's running guess at the current
period's rate, a dozen to thousands of them per settlement.

The position is kept at a constant notional (rebalanced at each settlement, the usual way to
compare carry across venues): the catalog has no trades to fill an order against. With a real
position, the notional is `position.quantity x` the mark price at settlement
(`FundingSettlement.mark_price` where the venue's history gives one).

Prints one JSON object: per instrument the settlements booked, the live estimates seen, the sum
of payments and its currency (the instrument's settlement currency), and `total` (all
instruments, USDT and USDC counted at par).
"""

import argparse
import json
import sys
import warnings

from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from nautilus_trader.trading.strategy import Strategy

from catalog_engine import CATALOG, engine_for
from messages.nautilus import FundingRateUpdate, FundingSettlement, query_funding_rates


class FundingCarry(Strategy):
    """Holds `notional` long (side +1) or short (-1) in each instrument; books every settlement."""

    def __init__(self, instrument_ids: list[InstrumentId], notional: float, side: int) -> None:
        super().__init__()
        self.instrument_ids, self.notional, self.side = instrument_ids, notional, side
        self.booked: dict[str, list[float]] = {str(i): [] for i in instrument_ids}
        self.estimates: dict[str, int] = {str(i): 0 for i in instrument_ids}

    def on_start(self) -> None:
        for instrument_id in self.instrument_ids:
            self.subscribe_data(DataType(FundingSettlement), client_id=CATALOG, instrument_id=instrument_id)
            self.subscribe_funding_rates(instrument_id)

    def on_data(self, data) -> None:
        if isinstance(data, FundingSettlement):
            self.booked[str(data.instrument_id)].append(-self.side * self.notional * data.rate)

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.estimates[str(funding_rate.instrument_id)] += 1  # an estimate: nothing is paid


def run(catalog_path: str, notional: float, side: int) -> dict:
    catalog = ParquetDataCatalog(catalog_path)
    engine, instruments = engine_for(catalog)
    has_data = False
    for instrument in instruments:
        ids = [instrument.id.value]
        settlements = catalog.query(FundingSettlement, identifiers=ids)  # list[CustomData]
        if settlements:
            engine.add_data(settlements, client_id=CATALOG, sort=False)
        estimates = query_funding_rates(catalog, ids)
        if estimates:
            engine.add_data(estimates, sort=False)
        has_data = has_data or bool(settlements or estimates)
    strategy = FundingCarry([i.id for i in instruments], notional, side)
    engine.add_strategy(strategy)
    if has_data:
        engine.sort_data()
        engine.run()
    engine.dispose()
    currency = {str(i.id): str(i.settlement_currency) for i in instruments}
    per_instrument = {
        iid: {"settlements": len(payments), "live_estimates_seen": strategy.estimates[iid],
              "payments": sum(payments), "currency": currency[iid]}
        for iid, payments in strategy.booked.items()
    }
    return {"side": "long" if side > 0 else "short", "notional": notional, "instruments": per_instrument,
            "total": sum(p["payments"] for p in per_instrument.values())}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("catalog")
    parser.add_argument("--notional", type=float, default=10_000.0, help="position notional in USD (default 10,000)")
    parser.add_argument("--side", choices=("long", "short"), default="long")
    args = parser.parse_args(argv[1:])
    if not args.notional > 0:
        parser.error(f"--notional must be a positive amount, got {args.notional}")
    warnings.filterwarnings("ignore", category=Warning, module="nautilus_trader")
    warnings.filterwarnings("ignore", message=".*utcnow.*")
    print(json.dumps(run(args.catalog, args.notional, 1 if args.side == "long" else -1), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
