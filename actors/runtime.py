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
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.asyncio
from loguru import logger

from actors.logs import make_private_dir, setup_logging
from actors.topology import Topology, TopologyError, bus_dir, load_topology
from messages.codec import encode
from messages.control import ActorStats

PARENT_POLL_S = 0.5
SUPERVISOR_PID_ENV = "DERIVS_SUPERVISOR_PID"  # set by the coordinator for every child
STATS_EVERY_S = 1.0


@dataclass
class Stats:
    """Counters an actor keeps up to date; reported to the coordinator every second."""

    events_in: int = 0
    events_out: int = 0
    queue_depth: int = 0
    last_event_ns: int = 0


ActorMain = Callable[[Topology, asyncio.Event, Stats], Awaitable[None]]


def make_bus_dir(mesh: str) -> Path:
    """The private directory of the mesh's ipc sockets (and its root): 0700, ours."""
    make_private_dir(bus_dir(mesh).parent)
    return make_private_dir(bus_dir(mesh))


def run_actor(name: str, topology_path: str, catalog: str | None, main: ActorMain) -> None:
    """Load the topology, set up logging, run `main(topology, stop, stats)` until it returns."""
    try:
        topo, _ = load_topology(topology_path, catalog=catalog)
    except TopologyError as exc:
        raise SystemExit(f"error: {exc}") from None
    make_private_dir(topo.run_dir)
    make_bus_dir(topo.mesh)
    setup_logging(name, topo.run_dir, json=topo.log_json)
    try:
        asyncio.run(_supervised(name, main, topo))
    except Exception:
        logger.exception("crashed")
        raise SystemExit(1) from None
    logger.info("stopped")


async def _supervised(name: str, main: ActorMain, topo: Topology) -> None:
    stop = asyncio.Event()
    stats = Stats()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    helpers = [asyncio.create_task(watch_parent(stop)), asyncio.create_task(_report_stats(name, topo, stats))]
    try:
        await main(topo, stop, stats)
    finally:
        for task in helpers:
            task.cancel()


async def _report_stats(name: str, topo: Topology, stats: Stats) -> None:
    """Tell the coordinator how we are doing; its silence detection treats a missing report as a hang."""
    ctx = zmq.asyncio.Context.instance()
    sock = socket(ctx, zmq.DEALER, identity=name)
    sock.setsockopt(zmq.SNDHWM, 10)  # nobody listening (actor run by hand): drop reports, never block
    sock.connect(topo.endpoint("control"))
    try:
        while True:
            report = ActorStats(name=name, pid=os.getpid(), events_in=stats.events_in, events_out=stats.events_out, queue_depth=stats.queue_depth, last_event_ns=stats.last_event_ns)
            try:
                await sock.send(encode(report), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            await asyncio.sleep(STATS_EVERY_S)
    finally:
        sock.close()


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    logger.info("{} received: stopping", signal.Signals(sig).name)
    stop.set()


async def watch_parent(stop: asyncio.Event) -> None:
    """Set `stop` when the supervising process is gone.

    The supervisor's pid comes from the environment, not from getppid() at start: a child whose
    parent died while it was still importing would otherwise take init for its parent.
    """
    parent = int(os.environ.get(SUPERVISOR_PID_ENV) or os.getppid())
    while not stop.is_set():
        if os.getppid() != parent:
            logger.warning("parent process {} is gone: stopping", parent)
            stop.set()
            return
        await asyncio.sleep(PARENT_POLL_S)


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
