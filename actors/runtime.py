"""What every actor process shares: topology, logging, signals, and leaving with its parent.

An actor is `python -m actors.<kind> --topology FILE ...`, started by the coordinator in its own
session, so Ctrl-C reaches only the coordinator, which stops the actors in order. SIGTERM or
SIGINT set the `stop` event; so does the death of the parent (a `kill -9`ed coordinator must not
leave orphans behind).

Health: a thread reports the actor's counters to the coordinator every second, with how long ago
the event loop last turned (`loop_lag_s`). A thread keeps reporting while the loop is busy, so the
coordinator tells a busy actor (its counters move) from a hung one (no report, or a stuck loop
and no progress). A task the actor cannot work without is started with `essential`: if it dies,
the actor exits with code 1 (and is restarted) instead of reporting as if it were healthy.
"""

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

import msgspec

import zmq
import zmq.asyncio
from loguru import logger

from actors.inbox import MAX_MESSAGE_BYTES
from actors.logs import make_private_dir, setup_logging
from actors.topology import Topology, TopologyError, bus_dir, load_topology
from messages.control import ActorStats

PARENT_POLL_S = 0.5
SUPERVISOR_PID_ENV = "DERIVS_SUPERVISOR_PID"  # set by the coordinator for every child
STATS_EVERY_S = 1.0
LOOP_TICK_S = 0.1  # how often the event loop notes that it turns (loop_lag_s)
CRASH_GRACE_S = 5.0  # an essential task died: the clean stop gets this long, then exit at once


@dataclass
class Stats:
    """Counters an actor keeps up to date; reported to the coordinator every second."""

    events_in: int = 0
    events_out: int = 0
    queue_depth: int = 0
    last_event_ns: int = 0
    unreachable_since_ns: int = 0  # a collector whose venue does not answer (actors/reachability.py)
    last_error: str = ""


ActorMain = Callable[[Topology, asyncio.Event, Stats], Awaitable[None]]


class ActorFailed(Exception):
    """An essential task of the actor ended with an exception."""


@dataclass
class _Health:
    stop: asyncio.Event
    loop_seen: float  # time.monotonic() of the event loop's last tick
    failed: str | None = None


_health: _Health | None = None  # one actor per process


def essential(coro: Coroutine, name: str) -> asyncio.Task:
    """Start a task the actor cannot work without (a receive loop, a sender, ...). If it ends with
    an exception, the actor stops (cleanly if it can within CRASH_GRACE_S) and exits with code 1,
    so the coordinator restarts it; a returning or cancelled task is not a failure."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_fail_if_raised)
    return task


def _fail_if_raised(task: asyncio.Task) -> None:
    if task.cancelled() or task.exception() is None or _health is None:
        return
    logger.opt(exception=task.exception()).critical(
        "{} failed: stopping this actor with exit code 1 so that the coordinator restarts it", task.get_name())
    if _health.failed is None:
        _health.failed = task.get_name()
        _health.stop.set()
        asyncio.get_running_loop().call_later(CRASH_GRACE_S, _exit_now)


def _exit_now() -> None:
    logger.critical("the clean stop after a failure took over {:.0f}s: exiting now", CRASH_GRACE_S)
    os._exit(1)


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
    except ActorFailed as exc:  # its traceback is logged already
        logger.critical("exiting with code 1: {}", exc)
        raise SystemExit(1) from None
    except Exception:
        logger.exception("crashed")
        raise SystemExit(1) from None
    logger.info("stopped")


async def _supervised(name: str, main: ActorMain, topo: Topology) -> None:
    global _health
    stop = asyncio.Event()
    stats = Stats()
    _health = health = _Health(stop, time.monotonic())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    helpers = [essential(watch_parent(stop), "watching the parent"), essential(_tick(health), "the loop tick")]
    reporting = threading.Event()
    reporter = threading.Thread(target=_report_stats, args=(name, topo.endpoint("control"), stats, health, reporting),
                                name="stats", daemon=True)
    reporter.start()
    try:
        await main(topo, stop, stats)
    finally:
        for task in helpers:
            task.cancel()
        reporting.set()
        reporter.join(timeout=2.0)
    if health.failed:
        raise ActorFailed(f"{health.failed} failed (logged above)")


async def _tick(health: _Health) -> None:
    """Note that the event loop turns; the reporter thread measures the lag from it."""
    while True:
        health.loop_seen = time.monotonic()
        await asyncio.sleep(LOOP_TICK_S)


def _report_stats(name: str, endpoint: str, stats: Stats, health: _Health, done: threading.Event) -> None:
    """In a thread: tell the coordinator how we are doing, every second, even while the event loop
    is busy. The coordinator takes a missing report, or a stuck loop without progress, for a hang."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, name.encode())
    sock.setsockopt(zmq.SNDHWM, 10)  # nobody listening (actor run by hand): drop reports, never block
    sock.connect(endpoint)
    encoder = msgspec.msgpack.Encoder()  # this thread's own
    try:
        while True:
            report = ActorStats(name=name, pid=os.getpid(), events_in=stats.events_in, events_out=stats.events_out,
                                queue_depth=stats.queue_depth, last_event_ns=stats.last_event_ns,
                                loop_lag_s=round(time.monotonic() - health.loop_seen, 3),
                                unreachable_since_ns=stats.unreachable_since_ns, last_error=stats.last_error)
            try:
                sock.send(encoder.encode(report), flags=zmq.NOBLOCK)
            except zmq.Again:
                pass
            if done.wait(STATS_EVERY_S):
                return
    finally:
        sock.close()
        ctx.term()


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
    """A socket that never hangs shutdown (LINGER 0: delivery is the outbox's job, not libzmq's) and
    never takes a message over MAX_MESSAGE_BYTES (set before bind/connect: it applies per connection)."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    if identity:
        sock.setsockopt(zmq.IDENTITY, identity.encode())
    return sock


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` unless `stop` is set first; True if stopping."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await stop.wait()
    return stop.is_set()
