"""Connection and subscription of a liquidation stream: one `Connection` per ccxt.pro client, the
hook that reads its raw frames, its watch tasks and its health.

ccxt.pro dials, sends the subscribe requests, pings and decodes frames; the venue's feed
(`venues/<venue>/liquidations.py`) says which watches to keep pending and what a frame is. Every
raw frame reaches `Connections` through the client's `on_raw_message` hook (`venues/client.py`
overrides ccxt.pro's `handle_message`, which ccxt binds to each WebSocket client it dials, so a hook set
before the first watch is used for every connection, including reconnects). Liquidation frames
stop at the hook: ccxt's own parsing of them costs 25-90 us a row (a cascade batch holds
hundreds) and would only fill its capped cache; answers, pongs and errors go on to ccxt.

A connection is healthy while no watch failed, no subscription was refused, every subscription
was acknowledged within `ack_timeout_s`, and some frame (or ccxt's pong) arrived within
`silence_timeout_s`. ccxt's keepalive is set to a third of that, so a healthy quiet connection
still shows a pong. `check` raises `ConnectionLost` otherwise; `changed` is set whenever the
answer may have changed before the time `next_check_at` gives.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from messages.events import Liquidation
from venues.base import describe
from messages.timeunits import NS
from venues.liquidation_config import REASON_CHARS, StreamConfig, StreamStats
from venues.liquidations import LiquidationFeed, Subscription, SymbolMap


class ConnectionLost(Exception):
    """A connection failed: `reason`, and since when (`start_ns`, ns) data may be missing."""

    def __init__(self, reason: str, start_ns: int, conn: "Connection | None" = None) -> None:
        super().__init__(reason)
        self.reason, self.start_ns, self.conn = reason, start_ns, conn


@dataclass(eq=False)
class Connection:
    """One connection attempt: a ccxt.pro client, its watch tasks, what its socket said."""

    cid: int
    exchange: Any
    own_exchange: bool  # created by the stream (from the factory): closed by it
    expected_acks: int
    opened_mono: float = field(default_factory=time.monotonic)
    opened_ns: int = field(default_factory=time.time_ns)
    ws: Any = None  # the ccxt ws Client, learnt from its first frame
    acks: int = 0
    acked_ns: int | None = None
    acked_mono: float | None = None
    error: str | None = None
    last_frame_ns: int = 0
    watchers: list[asyncio.Task] = field(default_factory=list)

    def last_alive_ns(self) -> int:
        """Newest sign of life, in ns: the last text frame (our hook) or ccxt's last pong.

        Not ccxt's `last_message_at`: the close frames of a dying socket update it too."""
        best = max(self.last_frame_ns, self.acked_ns or 0, self.opened_ns)
        ms = getattr(self.ws, "lastPong", None) if self.ws is not None else None
        if isinstance(ms, int | float):
            best = max(best, int(ms) * 1_000_000)
        return best

    def check(self, config: StreamConfig) -> None:
        """Raise ConnectionLost unless the connection is healthy (see module doc)."""
        for t in self.watchers:
            if t.done() and not t.cancelled() and t.exception() is not None:
                reason = describe(t.exception(), REASON_CHARS)
                if "keepalive" in reason:  # ccxt's own pong check: the socket went silent
                    reason = f"silence: no pong ({reason})"
                raise ConnectionLost(reason, self.last_alive_ns(), self)
        if self.error is not None:
            raise ConnectionLost(f"subscription refused: {self.error}", self.last_alive_ns(), self)
        if self.acked_ns is None:
            if time.monotonic() - self.opened_mono >= config.ack_timeout_s:
                raise ConnectionLost(f"no subscription acknowledgement within {config.ack_timeout_s:.0f} s",
                                     self.last_alive_ns(), self)
            return
        last = self.last_alive_ns()
        if time.time_ns() - last >= config.silence_timeout_s * NS:
            raise ConnectionLost(f"silence: no message and no pong for {config.silence_timeout_s:.0f} s", last, self)

    def next_check_at(self, config: StreamConfig) -> float:
        """The monotonic time at which `check` may fail for lack of an ack or of a frame."""
        if self.acked_ns is None:
            return self.opened_mono + config.ack_timeout_s
        return time.monotonic() + config.silence_timeout_s - (time.time_ns() - self.last_alive_ns()) / NS


OnLiquidations = Callable[[list[Liquidation], int], None]  # (events of one frame, connection id)


class Connections:
    """The live connections of one stream, and the hook that reads their frames."""

    def __init__(self, feed: LiquidationFeed, symbols: SymbolMap, unified: list[str], all_symbols: bool,
                 config: StreamConfig, on_liquidations: OnLiquidations, stats: StreamStats, log: Any) -> None:
        self.feed, self.symbols, self.unified, self.all_symbols = feed, symbols, unified, all_symbols
        self.config, self.on_liquidations, self.stats, self.log = config, on_liquidations, stats, log
        self.changed = asyncio.Event()  # an ack, a refusal or a failed watch: supervision looks again
        self._live: dict[int, Connection] = {}  # id(exchange) -> live connection on it
        self._next_cid = 0

    def live(self) -> list[Connection]:
        return list(self._live.values())

    def open(self, exchange: Any, own: bool) -> Connection:
        """A new connection on `exchange`: its watches start dialling and subscribing at once."""
        self._install_hook(exchange)
        self._next_cid += 1
        subscriptions = self.feed.subscriptions(exchange, self.unified, self.all_symbols)
        conn = Connection(self._next_cid, exchange, own, len(subscriptions))
        self._live[id(exchange)] = conn
        for subscription in subscriptions:
            task = asyncio.create_task(self._watch(subscription))
            task.add_done_callback(lambda _: self.changed.set())
            conn.watchers.append(task)
        return conn

    def subscribe_more(self, unified: list[str]) -> None:
        """Symbols that joined the stream: each live connection subscribes them too (one more
        acknowledgement each; a refusal fails the connection, which then re-subscribes all)."""
        for conn in self.live():
            for subscription in self.feed.subscriptions(conn.exchange, unified, False):
                conn.expected_acks += 1
                task = asyncio.create_task(self._watch(subscription))
                task.add_done_callback(lambda _: self.changed.set())
                conn.watchers.append(task)

    @staticmethod
    async def _watch(subscription: Subscription) -> None:
        """Keep ccxt's watch pending (it dials, subscribes, pings); frames come via the hook."""
        while True:
            await subscription()

    async def close(self, conn: Connection, *, close_exchange: bool) -> None:
        if self._live.get(id(conn.exchange)) is conn:
            del self._live[id(conn.exchange)]
        for t in conn.watchers:
            t.cancel()
        await asyncio.gather(*conn.watchers, return_exceptions=True)
        clients = getattr(conn.exchange, "clients", None) or {}
        for url, ws in list(clients.items()):
            clients.pop(url, None)
            # a zombie socket may never answer the close handshake: do not wait for it
            asyncio.get_running_loop().create_task(self._close_ws(ws))
        if close_exchange:
            with contextlib.suppress(Exception):
                await conn.exchange.close()

    @staticmethod
    async def _close_ws(ws: Any) -> None:
        try:
            async with asyncio.timeout(2.0):
                await ws.close()
        except BaseException:  # noqa: BLE001 - best effort; then drop the transport
            connection = getattr(ws, "connection", None)
            transport = getattr(getattr(connection, "_response", None), "connection", None)
            with contextlib.suppress(Exception):
                if transport is not None and transport.transport is not None:
                    transport.transport.abort()

    # -- frames -----------------------------------------------------------------------------

    def _install_hook(self, exchange: Any) -> None:
        """Take every raw frame through the client's `on_raw_message` (venues/client.py)."""
        if getattr(exchange, "_liquidation_hook", None) is self:
            return

        def on_raw_message(ws_client: Any, message: Any) -> bool:
            is_liq = self.feed.is_liquidation(message)
            self._on_frame(exchange, ws_client, message, is_liq)
            if is_liq:  # `record: true`: replayed by `python -m emulator --replay`
                exchange.record_frame(getattr(ws_client, "url", ""), message)
            return is_liq  # taken whole: ccxt's parser would only refill its cache (module doc)

        exchange.on_raw_message = on_raw_message
        exchange._liquidation_hook = self
        # a quiet but healthy socket must still show a frame (a pong) well within the timeout
        keep_alive = int(self.config.silence_timeout_s * 1000 / 3)
        streaming = dict(getattr(exchange, "streaming", None) or {})
        if streaming.get("keepAlive", keep_alive + 1) > keep_alive:
            streaming["keepAlive"] = keep_alive
            exchange.streaming = streaming

    def _on_frame(self, exchange: Any, ws_client: Any, message: Any, is_liq: bool) -> None:
        conn = self._live.get(id(exchange))
        if conn is None:
            return
        if conn.ws is None:
            conn.ws = ws_client
        elif conn.ws is not ws_client:
            return  # a frame of a socket being closed
        now = time.time_ns()
        conn.last_frame_ns = now
        if is_liq:
            events, skipped = self.feed.liquidations(message, self.symbols, now)
            if skipped:
                self.stats.skipped += len(skipped)
                self.log.debug("liquidations: skipped {} row(s): {}", len(skipped), "; ".join(sorted(set(skipped))))
            self.on_liquidations(events, conn.cid)
            return
        answer = self.feed.answer(message)
        if answer is None:
            return
        ok, error = answer
        if not ok:
            conn.error = error
        else:
            conn.acks += 1
            if conn.acks >= conn.expected_acks and conn.acked_ns is None:
                conn.acked_ns = now
        self.changed.set()
