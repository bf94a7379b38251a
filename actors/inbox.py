"""Receiving from the bus: nothing a foreign or buggy peer sends stops a receive loop.

Every receive loop of the mesh reads through an `Inbox`:

- a message over MAX_MESSAGE_BYTES is refused by libzmq itself (ZMQ_MAXMSGSIZE, set by
  `actors.runtime.socket`: it is never read into memory; the sender's connection is dropped and
  it reconnects). libzmq does not say why a connection dropped, so every disconnect is logged
  with both possible reasons;
- a message with the wrong number of frames is refused;
- the loop's own refusals (undecodable, unknown type, unknown peer) go through `refuse`;
- refusals are logged rate-limited: the first of a kind at once, then at most one line per
  REFUSAL_LOG_EVERY_S with the count, so a flood of garbage cannot flood the logs;
- every YIELD_EVERY messages the loop yields to the event loop (a loop that receives batches
  also yields after each batch of YIELD_EVERY events or more). Awaiting a socket that already
  has a message queued does not yield (pyzmq hands back a finished future), so a loop under
  load would otherwise starve every other task of its process.
"""

import asyncio
import time

import zmq
import zmq.asyncio
from loguru import logger

MAX_MESSAGE_BYTES = 1 << 20  # the largest event is a few kB (Malformed: 3,000 characters at most)
YIELD_EVERY = 100  # messages; ~10 ms of work at most between two turns of the event loop
REFUSAL_LOG_EVERY_S = 10.0
MONITOR_CHECK_S = 1.0


class RateLimitedLog:
    """Warnings of one kind: the first at once, then one summary per `every_s` while they go on."""

    def __init__(self, every_s: float = REFUSAL_LOG_EVERY_S):
        self.every_s = every_s
        self.windows: dict[str, list] = {}  # kind -> [suppressed count, last (level, message, args)]

    def log(self, kind: str, level: str, message: str, *args: object) -> None:
        window = self.windows.get(kind)
        if window is not None:
            window[0] += 1
            window[1] = (level, message, args)
            return
        logger.log(level, message, *args)
        self._open(kind)

    def _open(self, kind: str) -> None:
        self.windows[kind] = [0, None]
        asyncio.get_running_loop().call_later(self.every_s, self._close, kind)

    def _close(self, kind: str) -> None:
        suppressed, last = self.windows.pop(kind)
        if suppressed:  # still going on: one line for all of them, and a new window
            level, message, args = last
            logger.log(level, message + " ({} more like it in the last {:.0f}s)", *args, suppressed, self.every_s)
            self._open(kind)


class Inbox:
    """The receiving side of one socket (see the module doc). `frames` is the number of frames a
    well-formed message has on this socket, the peer's identity frame of a ROUTER included."""

    def __init__(self, sock: zmq.asyncio.Socket, where: str, *, frames: int):
        self.sock, self.where, self.frames = sock, where, frames
        self.routed = sock.socket_type == zmq.ROUTER
        self.log = RateLimitedLog()
        if sock.getsockopt(zmq.MAXMSGSIZE) != MAX_MESSAGE_BYTES:  # it applies to connections made after it is set
            raise ValueError(f"{where}: set ZMQ_MAXMSGSIZE before bind/connect (actors.runtime.socket does)")
        self.monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.monitor_events = zmq.Socket.shadow(self.monitor.underlying)  # read without awaiting
        self.received = 0
        self.monitor_checked = time.monotonic()

    async def recv(self) -> list[bytes]:
        """The next well-formed message's frames; anything else is refused and logged."""
        while True:
            self.received += 1
            if self.received % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the rest of the process run (stats, acks, timers)
            if time.monotonic() - self.monitor_checked >= MONITOR_CHECK_S:
                self._log_disconnects()
            parts = await self.sock.recv_multipart()
            if len(parts) == self.frames:
                return parts
            sent = len(parts) - self.routed  # as the peer sent it: without the identity frame
            self.refuse("frames", "message of {} frames from {!r} refused (a message here has {})",
                        sent, self.peer(parts), self.frames - self.routed)

    def peer(self, parts: list[bytes]) -> bytes:
        return parts[0][:64] if self.routed and parts else b"?"

    def refuse(self, kind: str, message: str, *args: object) -> None:
        """Log a refused message (rate-limited per kind); `message` is a loguru format."""
        self.log.log(f"{self.where}.{kind}", "WARNING", f"{self.where}: {message}", *args)

    def _log_disconnects(self) -> None:
        self.monitor_checked = time.monotonic()
        while self.monitor_events.poll(0):
            self.monitor_events.recv_multipart(zmq.NOBLOCK)  # nothing in the event says why
            self.log.log(f"{self.where}.disconnect", "INFO", f"{self.where}: a peer disconnected (it stopped, or it "
                         "sent a message over {:,} bytes, which is refused)", MAX_MESSAGE_BYTES)

    def close(self) -> None:
        """Before the socket's context ends (an open monitor socket would block `ctx.term()`)."""
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
