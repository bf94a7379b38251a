"""Starts the venue apps, each on its own port, so one venue can be down alone."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from loguru import logger

from emulator import binance, bybit, faults, hyperliquid, ratelimit
from emulator.common import VenueContext
from emulator.ground_truth import GroundTruth
from emulator.liquidations import LIQUIDATION_RATE
from emulator.market import VENUES, Market

_FACTORIES: dict[str, Callable[[VenueContext], web.Application]] = {
    "binance": binance.create_app,
    "bybit": bybit.create_app,
    "hyperliquid": hyperliquid.create_app,
}
# Keep-alive connections of clients must not hold shutdown: the CLI promises < 1 s.
_SHUTDOWN_TIMEOUT_S = 0.2


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


async def listen(runners: list[web.AppRunner], app: web.Application, host: str, port: int) -> str:
    """Serve app on host:port (0 = a free port); its runner joins `runners` (to be cleaned up
    even if listening fails). Returns the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    runners.append(runner)
    await web.TCPSite(runner, host, port).start()
    return f"http://{host}:{runner.addresses[0][1]}"


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
) -> Emulator:
    """Start the given venues in the running event loop (port 0 / missing = a free port).

    Use in-process: ``async with await start_emulator(ground_truth=p) as emu: emu.urls["bybit"]``.
    """
    venues = list(venues)
    unknown = [v for v in venues if v not in _FACTORIES]
    if unknown:
        raise ValueError(f"unknown venue(s) {unknown}; known: {list(_FACTORIES)}")
    market = Market(seed)
    recorder = GroundTruth(ground_truth)
    emu = Emulator(urls={}, market=market, recorder=recorder)
    try:
        for venue in venues:
            app = _FACTORIES[venue](VenueContext(venue, market, recorder, clock_ns))
            if liquidation_rate is not None:  # base liquidations per symbol per second
                app[LIQUIDATION_RATE] = liquidation_rate
            ratelimit.install(app, venue, enabled=rate_limits, scale=rate_limit_scale)  # the venue's limits
            faults.install(app, venue, recorder)  # maintenance, timeouts, malformed answers, delistings
            emu.urls[venue] = await listen(emu._runners, app, host, (ports or {}).get(venue, 0))  # noqa: SLF001
    except BaseException:
        await emu.close()
        raise
    return emu


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
