"""What every actor process shares: topology, logging, signals, and leaving with its parent.

An actor is `python -m actors.<kind> --topology FILE ...`, started by the coordinator in its own
session, so Ctrl-C reaches only the coordinator, which stops the actors in order. SIGTERM or
SIGINT set the `stop` event; so does the death of the parent (a `kill -9`ed coordinator must not
leave orphans behind).
"""

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import zmq
import zmq.asyncio
from loguru import logger

from actors.logs import make_private_dir, setup_logging
from actors.topology import Topology, TopologyError, load_topology

PARENT_POLL_S = 0.5


def run_actor(name: str, topology_path: str, catalog: str | None, main: Callable[[Topology, asyncio.Event], Awaitable[None]]) -> None:
    """Load the topology, set up logging, run `main(topology, stop)` until it returns."""
    try:
        topo, _ = load_topology(topology_path, catalog=catalog)
    except TopologyError as exc:
        raise SystemExit(f"error: {exc}") from None
    make_private_dir(topo.run_dir)
    setup_logging(name, topo.run_dir, json=topo.log_json)
    try:
        asyncio.run(_supervised(main, topo))
    except Exception:
        logger.exception("crashed")
        raise SystemExit(1) from None
    logger.info("stopped")


async def _supervised(main: Callable[[Topology, asyncio.Event], Awaitable[None]], topo: Topology) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    watcher = asyncio.create_task(_watch_parent(stop))
    try:
        await main(topo, stop)
    finally:
        watcher.cancel()


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    logger.info("{} received: stopping", signal.Signals(sig).name)
    stop.set()


async def _watch_parent(stop: asyncio.Event) -> None:
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            logger.warning("parent process {} is gone: stopping", parent)
            stop.set()


def socket(ctx: zmq.asyncio.Context, kind: int, *, identity: str | None = None) -> zmq.asyncio.Socket:
    """A socket that never hangs shutdown (LINGER 0: delivery is the outbox's job, not libzmq's)."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if identity:
        sock.setsockopt(zmq.IDENTITY, identity.encode())
    return sock


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` unless `stop` is set first; True if stopping."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True
