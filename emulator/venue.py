"""Owns what the server and the shared engines know of one emulated venue (`EmulatedVenue`): its
app factory, its fault and rate-limit rules, and its liquidation WebSocket as the replay serves it
(`ReplayStreams`). Each venue package exports one as `EMULATED`; `emulator/server.py` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.common import VenueContext
from emulator.faults import FaultRules
from emulator.listings import ListingRules
from emulator.ratelimit import LimitRules


@dataclass(frozen=True)
class ReplayStreams:
    """How one venue's liquidation WebSocket is replayed: its paths and its subscription protocol."""

    paths: tuple[str, ...]
    topic: Callable[[Any], str]  # the stream a recorded message belongs to
    path_topics: Callable[[str], set[str]]  # what the path's {stream} subscribes at connect
    receives: Callable[[str, set[str]], bool]  # whether a connection with these topics gets a message of topic
    answer: Callable[[dict, set[str], str], dict]  # (request, the connection's topics, conn id) -> reply; updates topics


@dataclass(frozen=True)
class EmulatedVenue:
    """One emulated venue, as the server assembles it."""

    name: str  # "binance": the --venues name, ports and ready-file key
    create_app: Callable[[VenueContext], web.Application]  # its REST (and WebSocket) application
    faults: FaultRules
    limits: LimitRules
    streams: ReplayStreams | None = None  # its liquidation WebSocket as replayed; None: it has none
    listing: ListingRules | None = None  # how it names a perpetual listed at run time (POST /_emulator/list)
