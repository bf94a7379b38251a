"""Owns assembling the emulator: the venue registry, each started venue's app on its own port (so
one venue can be down alone) with its rate limits and faults, the replay of a recording in its
place, and the ready file."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from loguru import logger

from emulator import binance, bybit, faults, hyperliquid, ratelimit
from emulator.common import VenueContext, listen
from emulator.ground_truth import GroundTruth
from emulator.liquidations import ENGINE, LIQUIDATION_RATE
from emulator.listings import DELISTED, Listings
from emulator.market import DAY, VENUES, Market
from emulator.universe import UNIVERSE_SIZE, Universe
from emulator.venue import EmulatedVenue

if TYPE_CHECKING:
    from emulator.replay import Replay

REGISTRY: dict[str, EmulatedVenue] = {v.name: v for v in (binance.EMULATED, bybit.EMULATED, hyperliquid.EMULATED)}
assert tuple(REGISTRY) == VENUES


@dataclass
class Emulator:
    """A running emulator: base URL per started venue; close() stops every listener."""

    urls: dict[str, str]
    market: Market
    recorder: GroundTruth
    _runners: list[web.AppRunner] = field(default_factory=list, repr=False)

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        self.recorder.close()

    async def __aenter__(self) -> Emulator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_emulator(
    *,
    seed: int = 7,
    venues: Iterable[str] = VENUES,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    ground_truth: str | os.PathLike[str] | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
    liquidation_rate: float | None = None,
    rate_limits: bool = False,
    rate_limit_scale: float = 1.0,
    universe: str = UNIVERSE_SIZE,
) -> Emulator:
    """Start the given venues in the running event loop (port 0 / missing = a free port), listing the
    `universe` ("full": as many perpetuals as the venues list; "core": the six reference coins).

    Use in-process: ``async with await start_emulator(ground_truth=p) as emu: emu.urls["bybit"]``.
    """
    venues = list(venues)
    unknown = [v for v in venues if v not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown venue(s) {unknown}; known: {list(REGISTRY)}")
    market = Market(seed)
    market.universe = Universe(seed, universe, anchor_ms=clock_ns() // 1_000_000 // DAY * DAY)
    recorder = GroundTruth(ground_truth)
    emu = Emulator(urls={}, market=market, recorder=recorder)
    try:
        for name in venues:
            venue = REGISTRY[name]
            app = venue.create_app(VenueContext(name, market, recorder, clock_ns))
            if liquidation_rate is not None:  # base liquidations per symbol per second
                app[LIQUIDATION_RATE] = liquidation_rate
            ratelimit.install(app, name, venue.limits, enabled=rate_limits, scale=rate_limit_scale)  # the venue's limits
            fault = faults.install(app, name, venue.faults, recorder)  # maintenance, timeouts, malformed answers, delistings
            app[DELISTED] = fault.delisted
            if ENGINE in app:  # a delisted symbol has no more liquidations
                app[ENGINE].excluded = fault.delisted
            if venue.listing is not None:
                Listings(VenueContext(name, market, recorder, clock_ns), venue.listing).install(app)
            emu.urls[name] = await listen(emu._runners, app, host, (ports or {}).get(name, 0))  # noqa: SLF001
    except BaseException:
        await emu.close()
        raise
    return emu


async def start_replay(directory: str | os.PathLike, *, venues: Iterable[str] | None = None, host: str = "127.0.0.1",
                       ports: Mapping[str, int] | None = None,
                       ground_truth: str | os.PathLike | None = None) -> Replay:
    """Serve the recording in `directory` (one port per recorded venue, of `venues` if given)."""
    # Imported here: the replay reads recordings with venues.recording, whose package loads ccxt
    # (seconds), which the market-model emulator never needs.
    from emulator.replay import Replay, Tape, create_app, recording_dir  # noqa: PLC0415
    from venues.recording import load  # noqa: PLC0415

    base = recording_dir(directory)
    recorded = {p.stem: p for p in sorted(base.glob("*.jsonl"))}
    wanted = list(venues) if venues is not None else list(recorded)
    missing = [v for v in wanted if v not in recorded]
    if missing:
        logger.warning("replay: no recording of {} in {}: not served", ", ".join(missing), base)
    wanted = [v for v in wanted if v in recorded]
    if not wanted:
        raise FileNotFoundError(f"{base}: no recording of {', '.join(missing) or 'any venue'}")
    replay = Replay(urls={}, tapes={}, truth=GroundTruth(ground_truth))
    try:
        for name in wanted:
            venue = REGISTRY[name]
            tape = Tape(name, load(recorded[name]))
            replay.tapes[name] = tape
            app = create_app(name, tape, replay.truth, venue.faults.maintenance, venue.streams)
            replay.urls[name] = await listen(replay._runners, app, host, (ports or {}).get(name, 0))  # noqa: SLF001
            logger.info("{} replay: {} answers of {} kinds from {}", name, sum(t.recorded for t in tape.tracks.values()),
                        len(tape.tracks), recorded[name])
    except BaseException:
        await replay.close()
        raise
    return replay


def write_ready_file(path: str | os.PathLike[str], urls: Mapping[str, str]) -> None:
    """Write {"venue": "http://host:port"} atomically (temp file + rename), so a poller
    never reads a half-written file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(dict(urls), f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.debug("ready file written: {}", target)
