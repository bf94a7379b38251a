"""Supervision of the mesh's child processes: owns `Actor` (what the coordinator knows of one
child) and the rules for starting it, restarting it with backoff when it crashes (a crash loop
marks it failed), stopping one on request, and killing one that hangs.

Hung: an actor that sends no report for `HANG_AFTER_S` (stopped or frozen), or whose event loop
has not turned for that long while its counters did not move either (a deadlock, an endless
wait); a loop that turns rarely while events go through is busy, not hung. It is killed and
restarted like a crash. Each child runs in its own session, so Ctrl-C reaches only the coordinator.
"""

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field

from loguru import logger

from actors.restart import RestartTracker
from actors.runtime import SUPERVISOR_PID_ENV
from actors.topology import RestartPolicy
from messages.control import ActorStats, ActorStatus

HANG_AFTER_S = 10.0  # no report, or neither a turn of the event loop nor progress, for this long: hung
STOP_ONE_TIMEOUT_S = 5.0  # bin/ctl stop/restart: SIGTERM, then SIGKILL after this


@dataclass
class Actor:
    name: str
    stage: str  # a stage of the coordinator's STAGES
    argv: list[str]
    tracker: RestartTracker
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    state: str = "starting"  # running, backoff, stopping, stopped, failed (reported: also unreachable)
    requested: str | None = None  # "stop" or "restart" from bin/ctl: the exit is not a crash
    stats: ActorStats | None = None
    last_report: float = 0.0
    last_progress: float = 0.0  # its loop turned or its counters moved
    task: asyncio.Task | None = field(default=None, repr=False)
    spawned: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set by every (re)start

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def status(self, now: float) -> ActorStatus:
        s = self.stats if self.stats and self.proc and self.stats.pid == self.proc.pid else None
        alive = self.alive
        unreachable = s.unreachable_since_ns if s and alive and self.state == "running" else 0
        return ActorStatus(
            name=self.name, state="unreachable" if unreachable else self.state, pid=self.proc.pid if alive else None,
            uptime_s=round(now - self.started_at, 1) if alive else 0.0, restarts=self.restarts,
            events_in=s.events_in if s else 0, events_out=s.events_out if s else 0,
            queue_depth=s.queue_depth if s else 0, last_event_ns=s.last_event_ns if s else 0,
            loop_lag_s=s.loop_lag_s if s else 0.0,
            unreachable_since_ns=unreachable, last_error=s.last_error if unreachable else "",
        )


class Supervisor:
    """Starts, restarts and stops the actors of one mesh; nothing is restarted once `stopping` is set."""

    def __init__(self, policy: RestartPolicy, stopping: asyncio.Event):
        self.policy, self.stopping = policy, stopping

    async def spawn(self, actor: Actor) -> None:
        env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())}  # children leave when we die
        actor.proc = await asyncio.create_subprocess_exec(*actor.argv, start_new_session=True, env=env)
        actor.started_at = actor.last_report = actor.last_progress = time.monotonic()
        actor.state = "running"
        actor.spawned.set()
        logger.info("started {} (pid {})", actor.name, actor.proc.pid)

    async def start(self, actor: Actor) -> None:
        """Spawn `actor` and restart it whenever it exits (see `_supervise`)."""
        await self.spawn(actor)
        actor.task = asyncio.create_task(self._supervise(actor))

    async def stop_supervising(self, actors: list[Actor]) -> None:
        """Nothing is restarted from here on (the mesh is stopping)."""
        tasks = [a.task for a in actors if a.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
                await self.spawn(actor)
                continue
            uptime = time.monotonic() - actor.started_at
            delay = actor.tracker.on_exit(time.monotonic(), uptime)
            if delay is None:
                actor.state = "failed"
                logger.critical(
                    "{} crashed {} times within {:.0f}s: marked FAILED, not restarting (bin/ctl start {} to try again); "
                    "the rest of the mesh keeps running", actor.name, self.policy.max_restarts + 1, self.policy.window_s,
                    actor.name,
                )
                return
            actor.state = "backoff"
            logger.error("{} exited with code {} after {:.1f}s: restarting in {:.1f}s", actor.name, code, uptime, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stopping.wait()
            if self.stopping.is_set():
                actor.state = "stopped"
                return
            actor.restarts += 1
            await self.spawn(actor)

    async def terminate(self, actor: Actor, why: str) -> None:
        """SIGTERM one actor (it drains and stops cleanly); SIGKILL if it does not within the timeout."""
        actor.requested, actor.state = why, "stopping"
        send_signal(actor.proc, signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_ONE_TIMEOUT_S):
                await asyncio.shield(actor.proc.wait())
        except TimeoutError:
            logger.error("{} did not stop within {:.0f}s: killed", actor.name, STOP_ONE_TIMEOUT_S)
            send_signal(actor.proc, signal.SIGKILL)

    async def restart(self, actor: Actor) -> None:
        """bin/ctl restart: stop it cleanly; `_supervise` starts it again at once; wait for that."""
        actor.spawned.clear()
        await self.terminate(actor, "restart")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_ONE_TIMEOUT_S):
                await actor.spawned.wait()

    def forgive(self, actor: Actor) -> None:
        """A manual start forgives the crash loop."""
        actor.tracker = RestartTracker(self.policy)

    @staticmethod
    def on_report(actor: Actor, report: ActorStats) -> None:
        now, before = time.monotonic(), actor.stats
        moved = before is None or before.pid != report.pid or (report.events_in, report.events_out) != (before.events_in, before.events_out)
        # Progress: its counters moved, or else its event loop turned (that long ago)
        actor.last_progress = max(actor.last_progress, now if moved else now - report.loop_lag_s)
        actor.stats, actor.last_report = report, now

    @staticmethod
    async def watch_hangs(actors: list[Actor]) -> None:
        """A hung actor (see the module doc) is killed; `_supervise` restarts it."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for a in actors:
                if a.stage == "emulator" or a.state != "running" or not a.alive:
                    continue
                if now - a.last_report > HANG_AFTER_S:
                    why = f"sent no report for {now - a.last_report:.0f}s"
                elif now - a.last_progress > HANG_AFTER_S:
                    why = f"its event loop has not turned and it processed no events for {now - a.last_progress:.0f}s"
                else:
                    continue
                logger.error("{} (pid {}) {}: hung, killing it", a.name, a.proc.pid, why)
                a.last_report = a.last_progress = now
                send_signal(a.proc, signal.SIGKILL)


def send_signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal a child unless it has exited (asyncio raises ProcessLookupError for an exited one)."""
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
