"""Coordinator: reads topology.yaml, starts every actor as its own OS process, supervises them
(actors/supervision.py), answers `bin/ctl` (actors/control_plane.py) and stops them all in order.
It owns the mesh's stage table and its start and stop sequences.

    python -m actors.coordinator [--sandbox] [--catalog PATH] topology.yaml   (bin/launch)

`STAGES` drives both orders: start (emulator,) writer, validator, collectors; stop on
SIGINT/SIGTERM the reverse: collectors (they wait for their last acks), validator, writer (syncs
its WAL, writes Parquet), emulator. Each stage has a deadline after which a straggler is killed,
all within `shutdown_timeout_s`.

A mesh that collects nothing must not look healthy: when every collector reports its venue
unreachable (actors/reachability.py) before any collected an event, the log says so once, with
each venue's error and what to do (`--sandbox` without a network).
"""

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import zmq
import zmq.asyncio
from loguru import logger

from storage.lock import CatalogLock, holder
from storage.paths import directory_problem
from actors.control_plane import ControlPlane
from actors.logs import make_private_dir, setup_logging
from actors.restart import RestartTracker
from actors.runtime import make_bus_dir, socket
from actors.supervision import Actor, Supervisor, send_signal
from actors.topology import Topology, TopologyError, load_topology
from messages.control import ActorStatus

EMULATOR_READY_TIMEOUT_S = 20.0
VENUE_CHECK_S = 1.0  # how often to look whether any venue answers, until one does
KILLED_REAP_S = 1.0  # after SIGKILL at a stop deadline: how long to wait for the kernel to reap it


@dataclass(frozen=True)
class Stage:
    name: str
    stop_by: float  # its actors must have exited by this fraction of shutdown_timeout_s (else killed)
    settle_s: float = 0.0  # after starting it: let it bind before the next stage's actors connect


# Started top to bottom, stopped bottom to top: collectors get ~5 s to have their backlog
# acknowledged, the validator drains by ~6 s, the writer syncs and writes Parquet by ~9 s.
STAGES = (
    Stage("emulator", stop_by=0.97),
    Stage("writer", stop_by=0.90, settle_s=0.2),
    Stage("validator", stop_by=0.62, settle_s=0.2),
    Stage("collector", stop_by=0.50),
)


class Coordinator:
    def __init__(self, topo: Topology, topology_path: Path, *, sandbox: bool):
        self.topo, self.topology_path, self.sandbox = topo, topology_path, sandbox
        self.stopping = asyncio.Event()
        self.actors: list[Actor] = []
        self.supervisor = Supervisor(topo.restart, self.stopping)
        self.zctx = zmq.asyncio.Context()
        self.control = ControlPlane(socket(self.zctx, zmq.ROUTER), self.actors, self.supervisor)

    def _actor(self, name: str, stage: str, module: str, *args: str) -> Actor:
        argv = [sys.executable, "-m", module, "--topology", str(self.topology_path), "--catalog", self.topo.catalog, *args]
        return Actor(name, stage, argv, RestartTracker(self.topo.restart))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            self.control.sock.bind(self.topo.endpoint("control"))
        except zmq.ZMQError as exc:
            logger.error("cannot bind the control endpoint {}: {} (is mesh {!r} already running?)",
                         self.topo.endpoint("control"), exc, self.topo.mesh)
            return 1
        helpers = [asyncio.create_task(self.control.serve()), asyncio.create_task(self.supervisor.watch_hangs(self.actors)),
                   asyncio.create_task(self._watch_venues())]
        started = await self._start()
        if started:
            logger.info(
                "mesh {!r} running{}: {}; catalog {}; logs {}/logs. Ctrl-C to stop.",
                self.topo.mesh, " in sandbox mode" if self.sandbox else "", ", ".join(a.name for a in self.actors),
                self.topo.catalog, self.topo.run_dir,
            )
            await self.stopping.wait()
        await self._shutdown()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await self.control.close()
        self.control.sock.close()
        self.zctx.term()
        return 0 if started else 1

    def _on_signal(self, sig: int) -> None:
        if self.stopping.is_set():
            logger.warning("{} again: already stopping", signal.Signals(sig).name)
            return
        logger.info("{} received: stopping the mesh", signal.Signals(sig).name)
        self.stopping.set()

    # -- start ----------------------------------------------------------------------------

    async def _start(self) -> bool:
        """Start the stages in order; False if the mesh cannot run (the sandbox's emulator did not start)."""
        urls: dict[str, str] = {}
        for stage in STAGES:
            if stage.name == "emulator":
                if self.sandbox and (urls := await self._start_emulator()) is None:
                    return False
                continue
            for actor in self._actors_of(stage.name, urls):
                self.actors.append(actor)
                await self.supervisor.start(actor)
            if stage.settle_s:
                await asyncio.sleep(stage.settle_s)  # bind before the peers connect: fewer reconnect retries
        return True

    def _actors_of(self, stage: str, urls: dict[str, str]) -> list[Actor]:
        if stage != "collector":
            return [self._actor(stage, stage, f"actors.{stage}")]
        actors = []
        for v in self.topo.venues:
            if not v.enabled:
                continue
            if self.sandbox and v.venue not in urls:
                logger.bind(venue=v.venue.upper()).error("the emulator has no {} venue: its collector stays down", v.venue)
                continue
            extra = ("--sandbox-url", urls[v.venue]) if v.venue in urls else ()
            actors.append(self._actor(f"collector.{v.venue}", "collector", "actors.collector", "--venue", v.venue, *extra))
        return actors

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
            "--rate-limits" if sb.rate_limits else "--no-rate-limits", "--universe", sb.universe,
            *(("--replay", str(self.topology_path.parent / sb.replay)) if sb.replay else ()),  # emulator/replay.py
        ]
        actor = Actor("emulator", "emulator", argv, RestartTracker(self.topo.restart))
        self.actors.append(actor)
        await self.supervisor.spawn(actor)
        deadline = time.monotonic() + EMULATOR_READY_TIMEOUT_S
        while time.monotonic() < deadline and actor.proc.returncode is None:
            if ready.exists():
                urls = json.loads(ready.read_text())
                logger.info("emulated venues ready: {}", ", ".join(f"{k} {v}" for k, v in urls.items()))
                return urls
            await asyncio.sleep(0.05)
        logger.error("the venue emulator did not start (see {}/logs)", self.topo.run_dir)
        return None

    async def _watch_venues(self) -> None:
        """Say it once if no venue answers before anything was collected (see the module doc)."""
        while True:
            await asyncio.sleep(VENUE_CHECK_S)
            now = time.monotonic()
            collectors = [a.status(now) for a in self.actors if a.stage == "collector"]
            if any(c.events_in for c in collectors):
                return  # a venue answered: whatever fails later is that venue's collector's to report
            if collectors and all(c.state == "unreachable" for c in collectors):
                logger.error(no_venue_message(collectors, self.topo, self.topology_path, sandbox=self.sandbox))
                return

    # -- stop -----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Stop the stages in reverse order, each by its deadline; kill what misses it (stopped with
        SIGSTOP, ignoring SIGTERM). An actor that is already dead, or dies meanwhile, is skipped."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.supervisor.stop_supervising(self.actors)
        for stage in reversed(STAGES):
            actors = [a for a in self.actors if a.stage == stage.name and a.alive]
            await self._stop_stage(actors, started + stage.stop_by * self.topo.shutdown_timeout_s, started)
        logger.info("mesh stopped in {:.1f}s", loop.time() - started)

    @staticmethod
    async def _stop_stage(actors: list[Actor], deadline: float, started: float) -> None:
        """SIGTERM every actor of one stage and wait for them to drain and exit, up to `deadline`."""
        for a in actors:
            a.state = "stopping"
            send_signal(a.proc, signal.SIGTERM)
        await _exited(actors, deadline)
        if late := [a for a in actors if a.alive]:
            for a in late:
                logger.error("{} did not stop by its deadline ({:.1f}s): killed", a.name, deadline - started)
                send_signal(a.proc, signal.SIGKILL)
            await _exited(late, asyncio.get_running_loop().time() + KILLED_REAP_S)  # SIGKILL ends even a stopped process
        for a in actors:
            a.state = "stopped"
            if a.alive:
                logger.error("{} (pid {}) is still there after SIGKILL: left behind", a.name, a.proc.pid)
            else:
                logger.info("{} stopped (exit code {})", a.name, a.proc.returncode)


def no_venue_message(collectors: list[ActorStatus], topo: Topology, topology_path: Path, *, sandbox: bool) -> str:
    """What the log says when no collector reaches its venue: each one's error, and what to do."""
    errors = "; ".join(f"{c.name}: {c.last_error}" for c in collectors)
    if not sandbox:
        hint = (f"no network to the exchanges? `bin/launch --sandbox {topology_path}` runs this mesh against the "
                "built-in emulated venues (no network, no keys)")
    elif topo.sandbox.start_emulator:
        hint = f"the emulator this mesh started does not answer: see {Path(topo.run_dir) / 'logs'}"
    else:
        hint = (f"no emulator answers at the URLs of {topo.sandbox.emulator_file or Path(topo.run_dir) / 'emulator.json'}"
                " (sandbox.start_emulator is false: start one, or drop that setting and `bin/launch --sandbox` "
                "starts its own)")
    return f"no venue can be reached, nothing is collected ({errors}); {hint}. The collectors keep retrying."


async def _exited(actors: list[Actor], deadline: float) -> None:
    """Wait until every one of `actors` has exited, or until `deadline` (the loop's clock)."""
    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.gather(*(a.proc.wait() for a in actors))
    except TimeoutError:
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
