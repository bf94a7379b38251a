"""Owns the emulated venues' WebSocket plumbing: accepted connections, their send queues, and the
faults done to them (`drop`: abort every socket and refuse new ones for a while; `silence`: open
sockets receive nothing and get no pong, a zombie subscription).

Protocol-free: each venue's stream module (`emulator/<venue>/ws.py`) decides what a text frame
means and what is pushed; `emulator/liquidations.py` exposes the faults as control endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import WSMsgType, web
from loguru import logger

from emulator.common import VenueContext

_ENCODER = msgspec.json.Encoder()


@dataclass(eq=False)
class Connection:
    """One accepted WebSocket and its send queue (a slow client never blocks the others)."""

    ws: web.WebSocketResponse
    request: web.Request
    conn_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    topics: set[str] = field(default_factory=set)
    silent_until: float = 0.0  # time.monotonic(); > now = a zombie: nothing sent, no pongs
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    opened: float = field(default_factory=time.monotonic)
    combined: bool = False  # Binance combined stream: events wrapped in {"stream", "data"}

    @property
    def silent(self) -> bool:
        return time.monotonic() < self.silent_until

    def push(self, text: str) -> bool:
        """Queue a frame; False if the socket is silent or closed (nothing sent)."""
        if self.silent or self.ws.closed:
            return False
        self.queue.put_nowait(text)
        return True



class WsHub:
    """The venue's WebSocket connections and the faults that can be done to them."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.connections: set[Connection] = set()
        self.refuse_until = 0.0
        self.pushed = 0

    def accepting(self) -> bool:
        return time.monotonic() >= self.refuse_until

    async def serve(self, request: web.Request, on_text: Callable[[Connection, str], object],
                    ping_interval_s: float | None = None,
                    on_open: Callable[[Connection], None] | None = None) -> web.StreamResponse:
        """Run one WebSocket until it closes: `on_text` handles each text frame (may return a
        coroutine). Pings from the client are answered by hand (autoping off) so a silent
        socket can ignore them."""
        if not self.accepting():
            raise web.HTTPServiceUnavailable(text="emulated outage")
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 22)
        await ws.prepare(request)
        conn = Connection(ws, request)
        if on_open is not None:
            on_open(conn)
        self.connections.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        pinger = asyncio.create_task(self._pinger(conn, ping_interval_s)) if ping_interval_s else None
        logger.debug("{} ws open {} {}", self.ctx.venue, request.path, conn.conn_id)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if conn.silent:
                        continue
                    result = on_text(conn, msg.data)
                    if asyncio.iscoroutine(result):
                        await result
                elif msg.type == WSMsgType.PING:
                    if not conn.silent:
                        await ws.pong(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.connections.discard(conn)
            for task in (writer, pinger):
                if task is not None:
                    task.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
            logger.debug("{} ws closed {}", self.ctx.venue, conn.conn_id)
        return ws

    async def _writer(self, conn: Connection) -> None:
        try:
            while True:
                text = await conn.queue.get()
                await conn.ws.send_str(text)
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return

    async def _pinger(self, conn: Connection, interval: float) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError, asyncio.CancelledError):
            while not conn.ws.closed:
                await asyncio.sleep(interval)
                if not conn.silent:
                    await conn.ws.ping()

    @staticmethod
    def send_json(conn: Connection, payload: object) -> None:
        conn.push(_ENCODER.encode(payload).decode())

    def broadcast(self, topic: str, text: str) -> int:
        """Send one frame to every responsive connection subscribed to topic; how many got it."""
        return sum(1 for c in list(self.connections) if topic in c.topics and c.push(text))

    def drop(self, refuse_seconds: float = 0.0) -> int:
        """Abort every socket (TCP close without a WebSocket close frame)."""
        self.refuse_until = time.monotonic() + max(0.0, refuse_seconds)
        n = 0
        for conn in list(self.connections):
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
                n += 1
            self.connections.discard(conn)
        return n

    def silence(self, seconds: float) -> int:
        until = time.monotonic() + seconds
        for conn in self.connections:
            conn.silent_until = until
        return len(self.connections)

