"""Owns the emulated Hyperliquid venue: its info API (`info.py`: perpetual metadata and asset
contexts, predictedFundings), funding history (`history.py`), universe and number format
(`assets.py`), error answers (`answers.py`), request limit (`limits.py`) and fault rules
(`faults.py`). Hyperliquid has no public liquidation stream, so none is emulated.
"""

from __future__ import annotations

from aiohttp import web

from emulator.common import VenueContext, logging_middleware
from emulator.history import install_stats
from emulator.hyperliquid.assets import LISTING
from emulator.hyperliquid.faults import FAULTS
from emulator.hyperliquid.info import HyperliquidInfo
from emulator.hyperliquid.limits import LIMITS
from emulator.venue import EmulatedVenue


def create_app(ctx: VenueContext) -> web.Application:
    """The Hyperliquid application (mount at the server root)."""
    app = web.Application(middlewares=[logging_middleware("hyperliquid")])
    app.add_routes(HyperliquidInfo(ctx).routes())
    install_stats(app)  # GET /_emulator/stats
    return app


EMULATED = EmulatedVenue("hyperliquid", create_app, FAULTS, LIMITS, listing=LISTING)
