"""Owns the emulated Binance USDT-M futures (fapi) venue: the endpoints ccxt's binanceusdm calls for
markets, open interest, funding rates and funding intervals (`rest.py`), their history
(`history.py`), the liquidation streams (`ws.py`), the listing (`instruments.py`), its error
answers (`answers.py`), request limits (`limits.py`) and fault rules (`faults.py`).

Shapes follow the real API (emulator/samples/binanceusdm.json): numbers are strings except
timestamps and integer fields; errors are HTTP 400 with {"code": -1121, "msg": "Invalid symbol."}.
"""

from __future__ import annotations

from aiohttp import web

from emulator.binance.faults import FAULTS
from emulator.binance.history import BinanceHistory
from emulator.binance.instruments import LISTING
from emulator.binance.limits import LIMITS
from emulator.binance.rest import BinanceRest
from emulator.binance.ws import REPLAY, ForceOrderStreams
from emulator.common import VenueContext, logging_middleware
from emulator.history import install_stats
from emulator.venue import EmulatedVenue


def create_app(ctx: VenueContext) -> web.Application:
    """The Binance fapi application (mount at the server root)."""
    app = web.Application(middlewares=[logging_middleware("binance")])
    app.add_routes(BinanceRest(ctx).routes())
    app.add_routes(BinanceHistory(ctx).routes())  # openInterestHist, fundingRate
    install_stats(app)  # GET /_emulator/stats
    ForceOrderStreams(ctx).install(app)  # liquidation WebSocket streams + /_emulator/ liquidation controls
    return app


EMULATED = EmulatedVenue("binance", create_app, FAULTS, LIMITS, REPLAY, LISTING)
