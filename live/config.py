"""Configuration of the mesh's live data client (`DerivsDataClientConfig`)."""

from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.live.config import LiveDataClientConfig

from actors.tap import NO_BUS_AFTER_S

DERIVS = "DERIVS"  # the client id strategies name: ClientId("DERIVS")


class DerivsDataClientConfig(LiveDataClientConfig, frozen=True):
    """
    topology: the mesh's `topology.yaml` (the live bus endpoint and the catalog come from it).
    catalog: another catalog than the topology's (as `bin/launch --catalog`).
    endpoint: another live bus endpoint than the topology's (`bus.taps`).
    no_bus_warning_s: how long to wait for the bus before saying the mesh looks down (it keeps
    connecting either way).
    """

    topology: str = "topology.yaml"
    catalog: str | None = None
    endpoint: str | None = None
    no_bus_warning_s: float = NO_BUS_AFTER_S
    instrument_provider: InstrumentProviderConfig = InstrumentProviderConfig(load_all=True)
