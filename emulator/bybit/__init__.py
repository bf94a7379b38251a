"""Owns the emulated Bybit v5 (category=linear) venue: instruments-info, tickers and open-interest,
which is what ccxt's bybit calls for markets, funding rates and open interest (`rest.py`), funding
and mark-price history (`history.py`), the allLiquidation stream (`ws.py`), the listing
(`instruments.py`), its answer envelope (`answers.py`), request limit (`limits.py`) and fault
rules (`faults.py`).

Every answer is HTTP 200 with the v5 envelope {"retCode","retMsg","result","retExtInfo","time"};
errors are a non-zero retCode (10001 for bad parameters), as on the real API.
"""

from __future__ import annotations

from aiohttp import web

from emulator.bybit.faults import FAULTS
from emulator.bybit.history import BybitHistory
from emulator.bybit.instruments import LISTING
from emulator.bybit.limits import LIMITS
from emulator.bybit.rest import BybitRest
from emulator.bybit.ws import REPLAY, AllLiquidationStream
from emulator.common import VenueContext, logging_middleware
from emulator.history import install_stats
from emulator.venue import EmulatedVenue


def create_app(ctx: VenueContext) -> web.Application:
    """The Bybit v5 application (mount at the server root)."""
    app = web.Application(middlewares=[logging_middleware("bybit")])
    app.add_routes(BybitRest(ctx).routes())
    app.add_routes(BybitHistory(ctx).routes())  # funding/history, mark-price-kline
    install_stats(app)  # GET /_emulator/stats
    AllLiquidationStream(ctx).install(app)  # liquidation WebSocket stream + /_emulator/ liquidation controls
    return app


EMULATED = EmulatedVenue("bybit", create_app, FAULTS, LIMITS, REPLAY, LISTING)
