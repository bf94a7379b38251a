"""NautilusTrader live data client for the mesh: its open interest, funding, liquidations and
gaps, live in a `TradingNode`, as the objects the catalog holds (README: "Live in NautilusTrader")."""

from live.config import DERIVS, DerivsDataClientConfig
from live.data import DerivsDataClient
from live.factories import DerivsLiveDataClientFactory

__all__ = ["DERIVS", "DerivsDataClient", "DerivsDataClientConfig", "DerivsLiveDataClientFactory"]
