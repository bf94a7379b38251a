"""Owns the command line:
``python -m emulator --seed 7 --venues binance,bybit,hyperliquid --ready-file PATH [--universe full|core]``.

Each venue listens on its own port (0 = a free one); a venue left out of --venues is not
started, so its port is closed and clients get "connection refused". Once every listener is
bound, the ready file {"binance": "http://127.0.0.1:PORT", ...} is written atomically.
SIGINT/SIGTERM stop it within a second.

``python -m emulator --replay DIR`` serves a recording (`record: true`, run/recordings) instead of
the market model: each request gets the next recorded answer of its kind (emulator/replay.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import click
from loguru import logger

from actors.runtime import SUPERVISOR_PID_ENV, watch_parent
from emulator.market import VENUES
from emulator.server import start_emulator, start_replay, write_ready_file
from emulator.universe import SIZES, UNIVERSE_SIZE


def _parse_venues(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    venues = [v.strip().lower() for v in value.split(",") if v.strip()]
    bad = [v for v in venues if v not in VENUES]
    if bad or not venues:
        raise click.BadParameter(f"expected a comma-separated subset of {','.join(VENUES)}, got {value!r}")
    return venues


async def _serve(seed: int, venues: list[str], host: str, ports: dict[str, int], ground_truth: str | None,
                 ready_file: str | None, liquidation_rate: float | None = None, rate_limits: bool = False,
                 rate_limit_scale: float = 1.0, replay: str | None = None, universe: str = UNIVERSE_SIZE) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if os.environ.get(SUPERVISOR_PID_ENV):  # started by a coordinator: leave with it
        loop.create_task(watch_parent(stop))
    if replay:
        emu = await start_replay(replay, venues=venues, host=host, ports=ports, ground_truth=ground_truth)
    else:
        emu = await start_emulator(seed=seed, venues=venues, host=host, ports=ports, ground_truth=ground_truth,
                                   liquidation_rate=liquidation_rate, rate_limits=rate_limits,
                                   rate_limit_scale=rate_limit_scale, universe=universe)
    try:
        if ready_file:
            write_ready_file(ready_file, emu.urls)
        logger.info("emulator ready ({}): {}", f"replay of {replay}" if replay else f"seed {seed}", " ".join(f"{v}={u}" for v, u in emu.urls.items()))
        await stop.wait()
        logger.info("emulator stopping")
    finally:
        await emu.close()


@click.command(context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to bind.")
@click.option("--seed", default=7, type=int, help="Market model seed.")
@click.option("--venues", default=",".join(VENUES), callback=_parse_venues, help="Venues to start.")
@click.option("--port-binance", default=0, type=int, help="0 = pick a free port.")
@click.option("--port-bybit", default=0, type=int, help="0 = pick a free port.")
@click.option("--port-hyperliquid", default=0, type=int, help="0 = pick a free port.")
@click.option("--ground-truth", type=click.Path(dir_okay=False), default=None,
              help="Append every served value to this JSONL file.")
@click.option("--ready-file", type=click.Path(dir_okay=False), default=None,
              help="Write the venue base URLs here (JSON) once listening.")
@click.option("--liquidation-rate", type=float, default=None,
              help="Base liquidations per symbol per second (default 0.2; cascades: POST /_emulator/cascade).")
@click.option("--rate-limits/--no-rate-limits", default=False,
              help="Enforce the venues' request limits (429/418, retCode 10006...; docs/venue-faults.md); "
                   "also POST /_emulator/ratelimit?enabled=1.")
@click.option("--rate-limit-scale", type=click.FloatRange(min=0.0, min_open=True, max=10.0), default=1.0,
              help="Multiply every rate-limit window and ban (0.1: a 1-minute window lasts 6 s).")
@click.option("--replay", type=click.Path(exists=True, file_okay=False), default=None,
              help="Serve this recording (a run's recordings/ directory, or the run directory) instead of the "
                   "market model: recorded answers in order, then 503 maintenance (emulator/replay.py).")
@click.option("--universe", type=click.Choice(SIZES), default=UNIVERSE_SIZE,
              help="full: as many perpetuals per venue as the real one lists (~540 Binance, ~560 Bybit, ~200 "
                   "Hyperliquid); core: BTC, ETH, SOL, XRP, DOGE, HYPE only (emulator/universe.py).")
@click.option("--log-level", default="INFO", type=click.Choice(["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"]),
              help="DEBUG logs one line per request.")
def main(host: str, seed: int, venues: list[str], port_binance: int, port_bybit: int, port_hyperliquid: int,
         ground_truth: str | None, ready_file: str | None, log_level: str, liquidation_rate: float | None,
         rate_limits: bool, rate_limit_scale: float, replay: str | None, universe: str) -> None:
    """Emulate Binance USDT-M, Bybit v5 linear and Hyperliquid REST on loopback."""
    logger.remove()
    logger.add(sys.stderr, level=log_level)
    ports = {"binance": port_binance, "bybit": port_bybit, "hyperliquid": port_hyperliquid}
    asyncio.run(_serve(seed, venues, host, ports, ground_truth, ready_file, liquidation_rate, rate_limits, rate_limit_scale,
                       replay, universe))


if __name__ == "__main__":
    main()
