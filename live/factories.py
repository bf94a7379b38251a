"""`DerivsLiveDataClientFactory`: registers the mesh's data client with a `TradingNode`, as
NautilusTrader's own adapters do::

    node = TradingNode(TradingNodeConfig(data_clients={"DERIVS": DerivsDataClientConfig(topology="topology.yaml")}))
    node.add_data_client_factory("DERIVS", DerivsLiveDataClientFactory)
    node.build()
"""

from __future__ import annotations

import asyncio

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.factories import LiveDataClientFactory
from nautilus_trader.model.identifiers import ClientId

from actors.topology import load_topology
from live.config import DerivsDataClientConfig
from live.data import DerivsDataClient
from live.providers import CatalogInstrumentProvider


class DerivsLiveDataClientFactory(LiveDataClientFactory):
    @staticmethod
    def create(loop: asyncio.AbstractEventLoop, name: str, config: DerivsDataClientConfig, msgbus: MessageBus,
               cache: Cache, clock: LiveClock) -> DerivsDataClient:
        """A client for the mesh of `config.topology` (raises TopologyError naming a bad value)."""
        topo, _ = load_topology(config.topology, catalog=config.catalog)
        return DerivsDataClient(loop=loop, client_id=ClientId(name), msgbus=msgbus, cache=cache, clock=clock,
                                instrument_provider=CatalogInstrumentProvider(topo.catalog, config.instrument_provider),
                                config=config, endpoint=config.endpoint or topo.endpoint("taps"),
                                catalog_path=topo.catalog)
