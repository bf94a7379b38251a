"""A NautilusTrader TradingNode fed live by a running derivs mesh: no execution client, no keys.

    python examples/live_node.py topology.yaml --seconds 60
    python examples/live_node.py topology.yaml --seconds 60 --warmup-hours 3 --record run/live.jsonl

The strategy subscribes to open interest, funding (Nautilus's `FundingRateUpdate` and our
`FundingRateInfo`, settlements), liquidations and gaps of every instrument of the topology, as soon as its
definition is known (from the catalog at connect, else when the mesh's collectors publish it),
optionally asks the catalog for the last `--warmup-hours` of open interest and funding, and logs
what arrives. After `--seconds` (or on SIGINT) it stops the node and prints, as its last line, one JSON object:
the count received per data type (`history` for the warm-up answers).

`--record FILE`: every object received, one JSON line each (`type`, `recv_ns`, `fields`: the
stored fields, `live.convert.as_dict`), for comparison with the catalog.
"""

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from datetime import timedelta

import click
from nautilus_trader.config import LoggingConfig, StrategyConfig, TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import DataType
from nautilus_trader.model.identifiers import ClientId, TraderId, Venue
from nautilus_trader.trading.strategy import Strategy

from actors.topology import TopologyError, load_topology
from live import DERIVS, DerivsDataClientConfig, DerivsLiveDataClientFactory
from live.convert import as_dict
from messages.nautilus import FundingRateInfo, FundingSettlement, Gap, Liquidation, OpenInterest

CUSTOM = (OpenInterest, FundingRateInfo, Liquidation)


class MeshDataLoggerConfig(StrategyConfig, frozen=True):
    symbols: list[tuple[str, str]]  # (VENUE, ccxt symbol) of the topology
    warmup_hours: float = 0.0
    log_each: bool = True


class MeshDataLogger(Strategy):
    def __init__(self, config: MeshDataLoggerConfig) -> None:
        super().__init__(config)
        self.wanted = {tuple(s) for s in config.symbols}
        self.client_id = ClientId(DERIVS)
        self.subscribed: set = set()
        self.counts: Counter = Counter()
        self.history: Counter = Counter()
        self.records: list[tuple[str, int, object]] = []

    def on_start(self) -> None:
        for venue in sorted({v for v, _ in self.wanted}):
            self.subscribe_instruments(Venue(venue), client_id=self.client_id)
        for inst in self.cache.instruments():
            self.on_instrument(inst)

    def on_instrument(self, instrument) -> None:  # noqa: ANN001
        iid = instrument.id
        if iid in self.subscribed or (str(iid.venue), (instrument.info or {}).get("symbol")) not in self.wanted:
            return
        self.subscribed.add(iid)
        for cls in CUSTOM:  # the instrument in the metadata, or (the other form, below) as an argument
            self.subscribe_data(DataType(cls, metadata={"instrument_id": str(iid)}), client_id=self.client_id)
        for cls in (Gap, FundingSettlement):  # settlements: from the daemon's backfill (backfill_lookback)
            self.subscribe_data(DataType(cls), client_id=self.client_id, instrument_id=iid)
        self.subscribe_funding_rates(iid, client_id=self.client_id)
        if self.config.warmup_hours:
            start = self.clock.utc_now() - timedelta(hours=self.config.warmup_hours)
            self.request_data(DataType(OpenInterest, metadata={"instrument_id": str(iid)}), self.client_id, start=start)
            self.request_funding_rates(iid, start, client_id=self.client_id)
        self.log.info(f"subscribed to {iid}")

    def _got(self, obj, counts: Counter) -> None:  # noqa: ANN001
        counts[type(obj).__name__] += 1
        self.records.append((type(obj).__name__, time.time_ns(), obj))
        if self.config.log_each:
            self.log.info(repr(obj))

    def on_data(self, data) -> None:  # noqa: ANN001
        self._got(data, self.counts)

    def on_funding_rate(self, funding_rate) -> None:  # noqa: ANN001
        self._got(funding_rate, self.counts)

    def on_historical_data(self, data) -> None:  # noqa: ANN001
        self._got(data, self.history)


def build_node(topology: str, symbols: list[tuple[str, str]], warmup_hours: float, log_each: bool) -> tuple[TradingNode, MeshDataLogger]:
    config = TradingNodeConfig(
        trader_id=TraderId("DERIVS-001"),
        logging=LoggingConfig(log_level="INFO"),
        data_clients={DERIVS: DerivsDataClientConfig(topology=topology)},
    )
    node = TradingNode(config=config)
    node.add_data_client_factory(DERIVS, DerivsLiveDataClientFactory)
    node.build()
    strategy = MeshDataLogger(MeshDataLoggerConfig(symbols=symbols, warmup_hours=warmup_hours, log_each=log_each))
    node.trader.add_strategy(strategy)
    return node, strategy


async def run_for(node: TradingNode, seconds: float) -> None:
    """Run the node until `seconds` passed or SIGINT/SIGTERM, then stop it (and still print the counts)."""
    running = asyncio.ensure_future(node.run_async())
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # instead of Nautilus's own handler, which stops the node only
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    await node.stop_async()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@click.command()
@click.argument("topology", type=click.Path(exists=True, dir_okay=False))
@click.option("--seconds", type=float, default=60.0, show_default=True, help="Run this long, then stop.")
@click.option("--warmup-hours", type=float, default=0.0, help="Ask the catalog for the last hours of OI and funding.")
@click.option("--record", type=click.Path(dir_okay=False), default=None, help="Write every object received here (JSON lines).")
@click.option("--quiet", is_flag=True, help="Do not log each object (counts only).")
def main(topology: str, seconds: float, warmup_hours: float, record: str | None, quiet: bool) -> None:
    """Run a TradingNode on the mesh of TOPOLOGY for --seconds; print the counts as JSON."""
    try:
        topo, _ = load_topology(topology)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from None
    symbols = [(v.venue.upper(), s) for v in topo.venues for s in v.symbols]
    node, strategy = build_node(topology, symbols, warmup_hours, not quiet)
    try:
        node.get_event_loop().run_until_complete(run_for(node, seconds))
    finally:
        node.dispose()
    if record:
        with open(record, "w") as f:
            for name, recv_ns, obj in strategy.records:
                f.write(json.dumps({"type": name, "recv_ns": recv_ns, "fields": as_dict(obj)}) + "\n")
    time.sleep(0.2)  # Nautilus's log writer is a thread: let its last lines out first
    sys.stdout.flush()
    print(json.dumps({**dict(sorted(strategy.counts.items())), "history": dict(sorted(strategy.history.items())),
                      "instruments": len(strategy.subscribed)}), flush=True)


if __name__ == "__main__":
    main()
