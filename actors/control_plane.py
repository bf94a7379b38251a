"""The coordinator's control endpoint (`topo.endpoint("control")`, a ROUTER): owns what arrives
there and the answers to `bin/ctl`.

Every actor reports `ActorStats` once a second from a thread (actors/runtime.py), so reports go
on while its event loop is busy; they feed the hang watch (actors/supervision.py). `bin/ctl` sends
one command (messages/control.py: `Status`, `Start`, `Stop`, `Restart`), matched on its type in
`_command`, and gets a `Reply`. Commands run one at a time, each in a task, so reports go on
while a restart waits for its actor to drain.
"""

import asyncio
import time

import zmq.asyncio
from loguru import logger

from actors.inbox import Inbox
from actors.supervision import Actor, Supervisor
from messages.codec import encode
from messages.control import ActorStats, Command, Reply, Restart, Start, Status, Stop, command_name, control_decoder


class ControlPlane:
    def __init__(self, sock: zmq.asyncio.Socket, actors: list[Actor], supervisor: Supervisor):
        self.sock, self.actors, self.supervisor = sock, actors, supervisor
        self.inbox = Inbox(sock, "control", frames=2)
        self.commands = asyncio.Lock()  # one bin/ctl command at a time; reports go on meanwhile
        self.answering: set[asyncio.Task] = set()

    async def serve(self) -> None:
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
                case Status() | Start() | Stop() | Restart():  # in a task: a restart takes seconds
                    task = asyncio.create_task(self._answer(peer, msg))
                    self.answering.add(task)
                    task.add_done_callback(self.answering.discard)
                case _:
                    self.inbox.refuse("type", "unexpected {} from {!r} dropped", type(msg).__name__, peer)

    async def close(self) -> None:
        for task in self.answering:
            task.cancel()
        await asyncio.gather(*self.answering, return_exceptions=True)
        self.inbox.close()

    def find(self, name: str) -> Actor | None:
        return next((a for a in self.actors if a.name == name), None)

    def _on_report(self, report: ActorStats) -> None:
        actor = self.find(report.name)
        if actor is None or actor.proc is None or report.pid != actor.proc.pid:
            return  # a report of a process we did not start, or of an old one
        self.supervisor.on_report(actor, report)

    async def _answer(self, peer: bytes, cmd: Command) -> None:
        async with self.commands:
            try:
                reply = await self._command(cmd)
            except Exception as exc:  # a bug here must not leave bin/ctl waiting, nor stop the control plane
                what = f"{command_name(cmd)} {getattr(cmd, 'name', '')}".rstrip()
                logger.exception("control: {} failed", what)
                reply = Reply(ok=False, message=f"{what} failed in the coordinator: {exc}")
        await self.sock.send_multipart([peer, encode(reply)])

    async def _command(self, cmd: Command) -> Reply:
        if isinstance(cmd, Status):
            now = time.monotonic()
            return Reply(ok=True, actors=[a.status(now) for a in self.actors])
        actor = self.find(cmd.name)
        if actor is None or actor.stage == "emulator":
            names = ", ".join(a.name for a in self.actors if a.stage != "emulator")
            return Reply(ok=False, message=f"no actor named {cmd.name!r}; actors: {names}")
        if self.supervisor.stopping.is_set():
            return Reply(ok=False, message="the mesh is stopping")
        match cmd:
            case Start() if actor.alive:
                return Reply(ok=False, message=f"{actor.name} is {actor.state} (pid {actor.proc.pid})")
            case Start() if actor.state == "backoff":
                return Reply(ok=False, message=f"{actor.name} is already restarting (backoff)")
            case Start():
                self.supervisor.forgive(actor)
                await self.supervisor.start(actor)
                logger.info("{} started by bin/ctl", actor.name)
                return Reply(ok=True, message=f"{actor.name} started (pid {actor.proc.pid})")
            case Stop() | Restart() if not actor.alive:
                return Reply(ok=False, message=f"{actor.name} is not running ({actor.state})")
            case Stop():
                old_pid = actor.proc.pid
                logger.info("bin/ctl stop {} (pid {})", actor.name, old_pid)
                await self.supervisor.terminate(actor, "stop")
                return Reply(ok=True, message=f"{actor.name} stopped (was pid {old_pid})")
            case Restart():
                old_pid = actor.proc.pid
                logger.info("bin/ctl restart {} (pid {})", actor.name, old_pid)
                await self.supervisor.restart(actor)
                return Reply(ok=True, message=f"{actor.name} restarted: pid {old_pid} -> {actor.proc.pid}")
        raise AssertionError(f"unhandled command {cmd!r}")  # the match above covers every Command
