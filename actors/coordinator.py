"""Coordinator: reads topology.yaml, starts every actor as its own OS process, restarts crashed
ones with backoff, and stops them all in order.

    python -m actors.coordinator [--sandbox] [--catalog PATH] topology.yaml   (bin/launch)

Start order: (emulator,) writer, validator, collectors. Stop order on SIGINT/SIGTERM: collectors
(they wait for their last acks), validator, writer (syncs its WAL, writes Parquet), emulator;
each stage has a deadline after which a straggler is killed, all within `shutdown_timeout_s`.
Each child runs in its own session, so Ctrl-C reaches only the coordinator.

Control plane (`topo.endpoint("control")`, a ROUTER): every actor reports `ActorStats` once a
second from a thread, so reports go on while its event loop is busy; an actor is hung (killed and
restarted) when it sends no report for `HANG_AFTER_S`, or when its event loop has not turned for
that long and its counters did not move either (busy is not hung). `bin/ctl` sends `Command`s:
status, restart, stop, start of one actor, answered with a `Reply`.
"""

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import zmq
import zmq.asyncio
from loguru import logger

from catalog.lock import CatalogLock, holder
from catalog.paths import directory_problem
from actors.inbox import Inbox
from actors.logs import make_private_dir, setup_logging
from actors.restart import RestartTracker
from actors.runtime import SUPERVISOR_PID_ENV, make_bus_dir, socket
from actors.topology import Topology, TopologyError, load_topology
from messages.codec import encode
from messages.control import ActorStats, ActorStatus, Command, Reply, control_decoder

EMULATOR_READY_TIMEOUT_S = 20.0
# Stop deadlines, as fractions of shutdown_timeout_s, by stage: collectors get ~5 s to have their
# backlog acknowledged, the validator drains by ~6 s, the writer syncs and writes Parquet by ~9 s.
STAGE_DEADLINES = {"collector": 0.50, "validator": 0.62, "writer": 0.90, "emulator": 0.97}
HANG_AFTER_S = 10.0  # no report, or neither a turn of the event loop nor progress, for this long: hung
KILLED_REAP_S = 1.0  # after SIGKILL at a stop deadline: how long to wait for the kernel to reap it
STOP_ONE_TIMEOUT_S = 5.0  # bin/ctl stop/restart: SIGTERM, then SIGKILL after this


@dataclass
class Actor:
    name: str
    stage: str
    argv: list[str]
    tracker: RestartTracker
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    state: str = "starting"  # running, backoff, stopping, stopped, failed
    requested: str | None = None  # "stop" or "restart" from bin/ctl: the exit is not a crash
    stats: ActorStats | None = None
    last_report: float = 0.0
    last_progress: float = 0.0  # its loop turned or its counters moved
    task: asyncio.Task | None = field(default=None, repr=False)

    def status(self, now: float) -> ActorStatus:
        s = self.stats if self.stats and self.proc and self.stats.pid == self.proc.pid else None
        alive = self.proc is not None and self.proc.returncode is None
        return ActorStatus(
            name=self.name, state=self.state, pid=self.proc.pid if alive else None,
            uptime_s=round(now - self.started_at, 1) if alive else 0.0, restarts=self.restarts,
            events_in=s.events_in if s else 0, events_out=s.events_out if s else 0,
            queue_depth=s.queue_depth if s else 0, last_event_ns=s.last_event_ns if s else 0,
            loop_lag_s=s.loop_lag_s if s else 0.0,
        )


class Coordinator:
    def __init__(self, topo: Topology, topology_path: Path, *, sandbox: bool):
        self.topo, self.topology_path, self.sandbox = topo, topology_path, sandbox
        self.stopping = asyncio.Event()
        self.actors: list[Actor] = []
        self.zctx = zmq.asyncio.Context()
        self.control = socket(self.zctx, zmq.ROUTER)
        self.inbox = Inbox(self.control, "control", frames=2)
        self.commands = asyncio.Lock()  # one bin/ctl command at a time; reports go on meanwhile
        self.answering: set[asyncio.Task] = set()

    def _actor(self, name: str, stage: str, module: str, *args: str) -> Actor:
        argv = [sys.executable, "-m", module, "--topology", str(self.topology_path), "--catalog", self.topo.catalog, *args]
        return Actor(name, stage, argv, RestartTracker(self.topo.restart))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            self.control.bind(self.topo.endpoint("control"))
        except zmq.ZMQError as exc:
            logger.error("cannot bind the control endpoint {}: {} (is mesh {!r} already running?)",
                         self.topo.endpoint("control"), exc, self.topo.mesh)
            return 1
        control = asyncio.create_task(self._serve_control())
        watchdog = asyncio.create_task(self._watch_hangs())
        urls: dict[str, str] = {}
        if self.sandbox:
            urls = await self._start_emulator()
            if urls is None:
                await self._shutdown()
                return 1
        self.actors += [self._actor("writer", "writer", "actors.writer"), self._actor("validator", "validator", "actors.validator")]
        for v in self.topo.venues:
            if not v.enabled:
                continue
            extra = ("--sandbox-url", urls[v.venue]) if v.venue in urls else ()
            if self.sandbox and v.venue not in urls:
                logger.bind(venue=v.venue.upper()).error("the emulator has no {} venue: its collector stays down", v.venue)
                continue
            self.actors.append(self._actor(f"collector.{v.venue}", "collector", "actors.collector", "--venue", v.venue, *extra))
        for actor in self.actors:
            if actor.stage == "emulator":
                continue
            await self._spawn(actor)
            actor.task = asyncio.create_task(self._supervise(actor))
            if actor.stage != "collector":
                await asyncio.sleep(0.2)  # bind before the peers connect: fewer reconnect retries
        logger.info(
            "mesh {!r} running{}: {}; catalog {}; logs {}/logs. Ctrl-C to stop.",
            self.topo.mesh, " in sandbox mode" if self.sandbox else "", ", ".join(a.name for a in self.actors), self.topo.catalog, self.topo.run_dir,
        )
        await self.stopping.wait()
        await self._shutdown()
        for task in (watchdog, control, *self.answering):
            task.cancel()
        await asyncio.gather(watchdog, control, *self.answering, return_exceptions=True)
        self.inbox.close()
        self.control.close()
        self.zctx.term()
        return 0

    def _on_signal(self, sig: int) -> None:
        if self.stopping.is_set():
            logger.warning("{} again: already stopping", signal.Signals(sig).name)
            return
        logger.info("{} received: stopping the mesh", signal.Signals(sig).name)
        self.stopping.set()

    # -- processes ------------------------------------------------------------------------

    async def _spawn(self, actor: Actor) -> None:
        env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())}  # children leave when we die
        actor.proc = await asyncio.create_subprocess_exec(*actor.argv, start_new_session=True, env=env)
        actor.started_at = actor.last_report = actor.last_progress = time.monotonic()
        actor.state = "running"
        logger.info("started {} (pid {})", actor.name, actor.proc.pid)

    async def _supervise(self, actor: Actor) -> None:
        """Restart `actor` when it exits, unless the mesh or bin/ctl stopped it."""
        while True:
            code = await actor.proc.wait()
            if self.stopping.is_set() or actor.requested == "stop":
                actor.state, actor.requested = "stopped", None
                return
            if actor.requested == "restart":  # bin/ctl restart: at once, not counted as a crash
                actor.requested = None
                actor.restarts += 1
                await self._spawn(actor)
                continue
            uptime = time.monotonic() - actor.started_at
            delay = actor.tracker.on_exit(time.monotonic(), uptime)
            if delay is None:
                actor.state = "failed"
                p = self.topo.restart
                logger.critical(
                    "{} crashed {} times within {:.0f}s: marked FAILED, not restarting (bin/ctl start {} to try again); "
                    "the rest of the mesh keeps running", actor.name, p.max_restarts + 1, p.window_s, actor.name,
                )
                return
            actor.state = "backoff"
            logger.error("{} exited with code {} after {:.1f}s: restarting in {:.1f}s", actor.name, code, uptime, delay)
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
                actor.state = "stopped"
                return
            except TimeoutError:
                pass
            actor.restarts += 1
            await self._spawn(actor)

    async def _terminate(self, actor: Actor, why: str) -> None:
        """SIGTERM one actor (it drains and stops cleanly); SIGKILL if it does not within the timeout."""
        actor.requested, actor.state = why, "stopping"
        _signal(actor.proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(actor.proc.wait()), STOP_ONE_TIMEOUT_S)
        except TimeoutError:
            logger.error("{} did not stop within {:.0f}s: killed", actor.name, STOP_ONE_TIMEOUT_S)
            _signal(actor.proc, signal.SIGKILL)

    # -- control plane ------------------------------------------------------------------------

    async def _serve_control(self) -> None:
        while True:
            peer, data = await self.inbox.recv()
            try:
                msg = control_decoder.decode(data)
            except Exception as exc:  # noqa: BLE001 - a bad peer must not stop the coordinator
                self.inbox.refuse("undecodable", "refused an undecodable message from {!r}: {}", peer, exc)
                continue
            match msg:
                case ActorStats():
                    self._on_report(msg)
                case Command():  # in a task: a restart takes seconds, and reports must go on meanwhile
                    task = asyncio.create_task(self._answer(peer, msg))
                    self.answering.add(task)
                    task.add_done_callback(self.answering.discard)
                case _:
                    self.inbox.refuse("type", "unexpected {} from {!r} dropped", type(msg).__name__, peer)

    def _on_report(self, report: ActorStats) -> None:
        actor = self._find(report.name)
        if actor is None or actor.proc is None or report.pid != actor.proc.pid:
            return  # a report of a process we did not start, or of an old one
        now, before = time.monotonic(), actor.stats
        moved = before is None or before.pid != report.pid or (report.events_in, report.events_out) != (before.events_in, before.events_out)
        # Progress: its counters moved, or else its event loop turned (that long ago)
        actor.last_progress = max(actor.last_progress, now if moved else now - report.loop_lag_s)
        actor.stats, actor.last_report = report, now

    async def _answer(self, peer: bytes, cmd: Command) -> None:
        async with self.commands:
            try:
                reply = await self._command(cmd)
            except Exception as exc:  # a bug here must not leave bin/ctl waiting, nor stop the control plane
                logger.exception("control: {} {} failed", cmd.command, cmd.name)
                reply = Reply(ok=False, message=f"{cmd.command} {cmd.name} failed in the coordinator: {exc}")
        await self.control.send_multipart([peer, encode(reply)])

    def _find(self, name: str) -> Actor | None:
        return next((a for a in self.actors if a.name == name), None)

    async def _command(self, cmd: Command) -> Reply:
        now = time.monotonic()
        if cmd.command == "status":
            return Reply(ok=True, actors=[a.status(now) for a in self.actors])
        actor = self._find(cmd.name)
        if actor is None or actor.stage == "emulator":
            names = ", ".join(a.name for a in self.actors if a.stage != "emulator")
            return Reply(ok=False, message=f"no actor named {cmd.name!r}; actors: {names}")
        if self.stopping.is_set():
            return Reply(ok=False, message="the mesh is stopping")
        alive = actor.proc is not None and actor.proc.returncode is None
        if cmd.command == "start":
            if alive or actor.state == "backoff":
                return Reply(ok=False, message=f"{actor.name} is {actor.state} (pid {actor.proc.pid})" if alive
                             else f"{actor.name} is already restarting (backoff)")
            actor.tracker = RestartTracker(self.topo.restart)  # a manual start forgives the crash loop
            await self._spawn(actor)
            actor.task = asyncio.create_task(self._supervise(actor))
            logger.info("{} started by bin/ctl", actor.name)
            return Reply(ok=True, message=f"{actor.name} started (pid {actor.proc.pid})")
        if not alive:
            return Reply(ok=False, message=f"{actor.name} is not running ({actor.state})")
        old_pid = actor.proc.pid
        logger.info("bin/ctl {} {} (pid {})", cmd.command, actor.name, old_pid)
        await self._terminate(actor, cmd.command)
        if cmd.command == "stop":
            return Reply(ok=True, message=f"{actor.name} stopped (was pid {old_pid})")
        deadline = time.monotonic() + STOP_ONE_TIMEOUT_S
        while (actor.proc.pid == old_pid or actor.proc.returncode is not None) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return Reply(ok=True, message=f"{actor.name} restarted: pid {old_pid} -> {actor.proc.pid}")

    async def _watch_hangs(self) -> None:
        """A hung actor is killed; _supervise restarts it. Hung: no report (the process is stopped or
        frozen), or its event loop stuck without its counters moving (a deadlock, an endless wait).
        A loop that turns rarely while events go through is busy, not hung."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for a in self.actors:
                if a.stage == "emulator" or a.state != "running" or a.proc is None or a.proc.returncode is not None:
                    continue
                if now - a.last_report > HANG_AFTER_S:
                    why = f"sent no report for {now - a.last_report:.0f}s"
                elif now - a.last_progress > HANG_AFTER_S:
                    why = f"its event loop has not turned and it processed no events for {now - a.last_progress:.0f}s"
                else:
                    continue
                logger.error("{} (pid {}) {}: hung, killing it", a.name, a.proc.pid, why)
                a.last_report = a.last_progress = now
                _signal(a.proc, signal.SIGKILL)

    async def _start_emulator(self) -> dict[str, str] | None:
        sb = self.topo.sandbox
        ready = Path(sb.emulator_file or Path(self.topo.run_dir) / "emulator.json")
        if not sb.start_emulator:
            try:
                return json.loads(ready.read_text())
            except (OSError, ValueError) as exc:
                logger.error("sandbox.start_emulator is false but {} cannot be read: {}", ready, exc)
                return None
        ready.unlink(missing_ok=True)
        truth = make_private_dir(Path(self.topo.run_dir) / "emulator") / "ground_truth.jsonl"
        venues = ",".join(v.venue for v in self.topo.venues if v.enabled)
        argv = [
            sys.executable, "-m", "emulator", "--host", sb.host, "--seed", str(sb.seed), "--venues", venues,
            "--ground-truth", str(truth), "--ready-file", str(ready),
            "--rate-limits" if sb.rate_limits else "--no-rate-limits",
            *(("--replay", str(self.topology_path.parent / sb.replay)) if sb.replay else ()),  # emulator/replay.py
        ]
        actor = Actor("emulator", "emulator", argv, RestartTracker(self.topo.restart))
        self.actors.append(actor)
        await self._spawn(actor)
        deadline = time.monotonic() + EMULATOR_READY_TIMEOUT_S
        while time.monotonic() < deadline and actor.proc.returncode is None:
            if ready.exists():
                urls = json.loads(ready.read_text())
                logger.info("emulated venues ready: {}", ", ".join(f"{k} {v}" for k, v in urls.items()))
                return urls
            await asyncio.sleep(0.05)
        logger.error("the venue emulator did not start (see {}/logs)", self.topo.run_dir)
        return None

    async def _shutdown(self) -> None:
        """Stop the stages in order; kill what misses its stage's deadline (stopped with SIGSTOP,
        ignoring SIGTERM). An actor that is already dead, or dies meanwhile, is skipped."""
        started = time.monotonic()
        supervisors = [a.task for a in self.actors if a.task]
        for task in supervisors:  # nothing is restarted from here on
            task.cancel()
        await asyncio.gather(*supervisors, return_exceptions=True)
        for stage, fraction in STAGE_DEADLINES.items():
            actors = [a for a in self.actors if a.stage == stage and a.proc and a.proc.returncode is None]
            for a in actors:
                a.state = "stopping"
                _signal(a.proc, signal.SIGTERM)
            deadline = started + fraction * self.topo.shutdown_timeout_s
            waits = {asyncio.ensure_future(a.proc.wait()): a for a in actors}
            if waits:
                await asyncio.wait(waits, timeout=max(0.0, deadline - time.monotonic()))
            for wait, a in waits.items():
                if not wait.done():
                    logger.error("{} did not stop by its deadline ({:.1f}s): killed", a.name, deadline - started)
                    _signal(a.proc, signal.SIGKILL)
            if late := [w for w in waits if not w.done()]:
                await asyncio.wait(late, timeout=KILLED_REAP_S)  # SIGKILL ends even a stopped process
            for wait, a in waits.items():
                a.state = "stopped"
                if not wait.done():
                    wait.cancel()
                    logger.error("{} (pid {}) is still there after SIGKILL: left behind", a.name, a.proc.pid)
                else:
                    logger.info("{} stopped (exit code {})", a.name, a.proc.returncode)
        logger.info("mesh stopped in {:.1f}s", time.monotonic() - started)


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal a child unless it has exited (asyncio raises ProcessLookupError for an exited one)."""
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


@click.command()
@click.argument("topology", type=click.Path(dir_okay=False), default="topology.yaml")
@click.option("--sandbox", is_flag=True, help="Run against the built-in emulated venues (no network, no keys).")
@click.option("--catalog", default=None, help="Catalog path (overrides the topology's `catalog`).")
def main(topology: str, sandbox: bool, catalog: str | None) -> None:
    """Start the whole mesh described by TOPOLOGY and supervise it until Ctrl-C / SIGTERM."""
    try:
        topo, path = load_topology(topology, catalog=catalog)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from None
    for directory, what in ((topo.run_dir, "run_dir"), (topo.catalog, "catalog")):
        if problem := directory_problem(directory, what):  # before anything starts
            raise click.ClickException(f"{path}: {problem}")
    make_private_dir(topo.run_dir)
    lock = _lock_mesh(make_bus_dir(topo.mesh), topo.mesh)
    Path(topo.catalog).mkdir(parents=True, exist_ok=True)
    setup_logging("coordinator", topo.run_dir, json=topo.log_json)
    try:
        sys.exit(asyncio.run(Coordinator(topo, path, sandbox=sandbox).run()))
    finally:
        lock.release()


def _lock_mesh(directory: Path, mesh: str) -> CatalogLock:
    """One coordinator per mesh name: binding an ipc path would silently take a running mesh's
    sockets over, so a second one must fail here, loudly."""
    lock = CatalogLock(directory, {"kind": "coordinator", "mesh": mesh}, name="coordinator.lock")
    if not lock.try_acquire():
        pid = (holder(directory, "coordinator.lock") or {}).get("pid", "?")
        raise click.ClickException(f"mesh {mesh!r} is already running (coordinator pid {pid}); "
                                   "stop it first, or give this topology another `mesh:` name")
    return lock


if __name__ == "__main__":
    main()
