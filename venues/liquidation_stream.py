"""Real-time liquidations of one venue, with ccxt.pro, that survive bursts, drops and silence.

    stream = LiquidationStream(adapter, client_pro, markets, on_event, on_gap, stop)
    await stream.run()          # returns once `stop` is set (or raises on a programming error)

What ccxt.pro 4.5.90 does, and what this module adds (venues.md "Things that bite"):

- Bursts. `watch_liquidations*` resolves one future per message hash: a burst of N liquidations
  handled in one read reaches the caller as 1 (`newUpdates=True`), the rest only sit in
  `exchange.liquidations`, a 1000-entry ring a cascade overruns. So ccxt.pro is used for what it
  is good at (dialling, the subscribe request, keepalive pings, decoding frames) and every raw
  message it receives is handed to `venues/liquidations.py` by a hook on the client's
  `handle_message` (ccxt builds each WebSocket client with `on_message =
  exchange.handle_message`, so an instance attribute set before the first watch is used for
  every connection, including reconnects). Liquidation messages stop at the hook: ccxt's own
  parsing of them costs 25-90 us a row (a cascade batch holds hundreds) and would only fill its
  cache; acks, pongs and errors go on to ccxt. Nothing is lost in a burst, whatever the
  consumer's speed: events wait in an in-memory queue for `on_event`.
- Reconnects. ccxt.pro does not reconnect by itself: a dropped socket rejects the pending watch
  with `NetworkError` and the next `watch_*` call dials again. Here every failure (error, a
  subscription refused or not acknowledged, silence) closes the socket, waits with exponential
  backoff and full jitter (`backoff_initial_s` doubling up to `backoff_max_s`, times 0.5-1.0;
  reset once a connection has been healthy for `stable_after_s`), logs each attempt, and
  re-subscribes. The outage is reported as `on_gap(start_ns, end_ns, reason)`: `start_ns` is the
  last frame received on the lost connection (anything after it may be missing), `end_ns` the
  venue's acknowledgement of the new subscription (nothing can arrive before it).
- Silence. A socket can stay open while the venue sends nothing (reported for Hyperliquid, and
  how a half-dead TCP path looks). ccxt's keepalive is set to a third of `silence_timeout_s`, so
  a healthy quiet connection still gets a pong (Binance: ping/pong frames; Bybit:
  `{"op": "ping"}`); no frame at all for `silence_timeout_s` forces a reconnect. (ccxt's own
  check, 2 missed pongs, may fire first; either way it is reported as silence.)
- Duplicates. A liquidation is keyed by (instrument, ts_event, side, quantity, price); inside a
  sliding window (`dedup_window_s` of event time) an event is passed on only if this connection
  has now delivered that key more often than any other connection did. A venue never repeats
  itself on one connection, so this removes exactly what two connections both delivered (the
  overlap of a rotation, a venue replay after reconnect) and keeps genuine repeats.
- Binance closes every connection after 24 h. With a `client_factory`, the stream opens a
  replacement connection on a fresh client after `max_connection_age_s` (default 23.5 h on
  Binance), waits for its subscription acknowledgement, then closes the old one: both deliver
  during the overlap and the de-duplication drops the doubles, so there is no hole. Without a
  factory it reconnects in place at that age and reports the (short) planned gap.
- All symbols (Binance only): with `all_markets`, the stream subscribes to `!forceOrder@arr`
  instead of one `<symbol>@forceOrder` per market and keeps the liquidations of every market in
  `all_markets` (their instrument ids come from those ccxt markets); the venue's 1/s/symbol
  sampling applies there too. Bybit has no all-symbols topic.
- Hyperliquid has no public liquidation feed: the constructor raises `LiquidationsUnsupported`
  with a clear message; the caller logs it and keeps its other venues running.

Binance pushes at most one liquidation per symbol per second (the venue samples; nothing can
recover the rest). Bybit's `allLiquidation` pushes all of them, batched every 500 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from venues.base import Market, VenueAdapter, backoff_delay, describe
from venues.liquidations import (
    ACKS,
    IS_LIQUIDATION,
    NORMALIZERS,
    LiquidationsUnsupported,
    check_supported,
    symbol_map,
)
from messages.events import Liquidation
from messages.timeunits import NS

__all__ = ["DedupWindow", "LiquidationStream", "LiquidationsUnsupported", "StreamStats", "backoff_delay"]

BINANCE_MAX_AGE_S = 23.5 * 3600  # Binance drops a connection at 24 h
# A gap starts this long before the last frame received: frames the venue had already queued
# when the socket died (sent before that frame was *read* here) are lost with it.
IN_FLIGHT_NS = 1 * NS
REASON_CHARS = 200  # of an exception's first line, in a log line and a gap's reason

OnEvent = Callable[[Liquidation], Awaitable[None]]
OnGap = Callable[[int, int, str], Awaitable[None]]


class DedupWindow:
    """Admit a liquidation unless another connection already delivered it (see module doc)."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._counts: dict[tuple, dict[int, int]] = {}
        self._order: deque[tuple[int, tuple]] = deque()
        self._newest = 0

    def __len__(self) -> int:
        return len(self._counts)

    def admit(self, key: tuple, ts_event: int, conn_id: int) -> bool:
        per = self._counts.get(key)
        if per is None:
            per = self._counts[key] = {}
            self._order.append((ts_event, key))
        n = per.get(conn_id, 0) + 1
        per[conn_id] = n
        others = max((v for c, v in per.items() if c != conn_id), default=0)
        if ts_event > self._newest:
            self._newest = ts_event
            horizon = ts_event - self.window_ns
            while self._order and self._order[0][0] < horizon:
                _, old = self._order.popleft()
                self._counts.pop(old, None)
        return n > others


def _names(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def liquidation_key(e: Liquidation) -> tuple:
    return (e.instrument_id, e.ts_event, e.side, e.quantity, e.price)


@dataclass
class StreamStats:
    connects: int = 0  # subscriptions acknowledged
    failures: int = 0  # connections lost or refused
    gaps: int = 0
    rotations: int = 0
    received: int = 0  # liquidations parsed from the venue's messages
    delivered: int = 0  # passed to on_event
    duplicates: int = 0
    skipped: int = 0  # rows the normalizer refused (reason logged at DEBUG)
    last_event_ns: int = 0


class _Failure(Exception):
    def __init__(self, reason: str, start_ns: int, conn: "_Conn | None" = None) -> None:
        super().__init__(reason)
        self.reason, self.start_ns, self.conn = reason, start_ns, conn


@dataclass(eq=False)
class _Conn:
    """One connection attempt: a ccxt.pro client, its watch tasks, what its socket said."""

    cid: int
    exchange: Any
    own_exchange: bool  # created here (from the factory): closed here
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


class LiquidationStream:
    """Liquidations of `markets` on one venue, each passed once to `on_event` (see module doc).

    - `adapter`: the venue adapter (`venues.adapter("binance")`).
    - `client_pro`: a ccxt.pro client of that venue (`adapter.client(sandbox_url, pro=True)`),
      owned by the caller (who closes it); used for the first connection.
    - `markets`: ccxt market dicts to watch (`adapter.resolve(...)` results).
    - `on_event(liquidation)`: awaited once per liquidation, in arrival order.
    - `on_gap(start_ns, end_ns, reason)`: awaited once per outage, when it is over (or at stop).
    - `stop`: set it to end `run()`.
    - `client_factory()`: a fresh ccxt.pro client of the same venue, for hole-free rotation
      before Binance's 24 h limit; the stream closes the clients it creates.
    - `all_markets`: Binance only: watch every market of this list on `!forceOrder@arr`
      (`markets` is then only what the caller configured; `self.markets` is what is watched).
    """

    def __init__(
        self,
        adapter: VenueAdapter,
        client_pro: Any,
        markets: list[Market],
        on_event: OnEvent,
        on_gap: OnGap,
        stop: asyncio.Event,
        *,
        client_factory: Callable[[], Any] | None = None,
        silence_timeout_s: float = 60.0,
        ack_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 10.0,
        max_connection_age_s: float | None = -1.0,  # -1: the venue's default (Binance 23.5 h)
        dedup_window_s: float = 60.0,  # rotation overlaps last seconds; memory grows with rate x window
        check_interval_s: float = 0.25,
        missing_since: tuple[int, str] | None = None,
        all_markets: list[Market] | None = None,
    ) -> None:
        check_supported(adapter.name)  # raises LiquidationsUnsupported (Hyperliquid)
        if adapter.name not in NORMALIZERS:
            raise LiquidationsUnsupported(f"no liquidation stream for venue {adapter.name!r}")
        if not markets:
            raise ValueError("no markets to watch")
        if all_markets is not None and adapter.name != "binance":
            raise LiquidationsUnsupported(
                f"liquidation_all_symbols: {adapter.name} has no all-symbols liquidation stream "
                "(only binance: !forceOrder@arr); list the symbols instead")
        self.all_symbols = all_markets is not None
        self.adapter, self.client = adapter, client_pro
        self.markets = list({m["symbol"]: m for m in [*markets, *(all_markets or [])]}.values())
        self.on_event, self.on_gap, self.stop = on_event, on_gap, stop
        self.client_factory = client_factory
        self.silence_timeout_s, self.ack_timeout_s = silence_timeout_s, ack_timeout_s
        self.backoff_initial_s, self.backoff_max_s, self.stable_after_s = backoff_initial_s, backoff_max_s, stable_after_s
        if max_connection_age_s is not None and max_connection_age_s < 0:
            max_connection_age_s = BINANCE_MAX_AGE_S if adapter.name == "binance" else None
        self.max_connection_age_s = max_connection_age_s
        self.check_interval_s = check_interval_s
        self.venue = adapter.name
        self.symbols = symbol_map(adapter, self.markets)
        self.unified = [m["symbol"] for m in self.markets]
        self._normalize = NORMALIZERS[self.venue]
        self._is_liq = IS_LIQUIDATION[self.venue]
        self._ack = ACKS[self.venue]
        self.dedup = DedupWindow(int(dedup_window_s * NS))
        self.stats = StreamStats()
        self.log = logger.bind(venue=adapter.venue)
        self._queue: deque[Liquidation] = deque()
        self._ready = asyncio.Event()
        self._conns: dict[int, _Conn] = {}  # id(exchange) -> live connection on it
        self._next_cid = 0
        self._rng = random.Random()
        self._outage: tuple[int, str] | None = None  # (start_ns, reason) of the outage in progress
        # (start_ns, reason): data may be missing since then (the previous run of the caller
        # stopped there); reported as a gap ending at the first subscription acknowledgement.
        self._missing_since = missing_since

    # -- public -----------------------------------------------------------------------------

    async def run(self) -> None:
        deliver = asyncio.create_task(self._deliver(), name=f"liq-deliver-{self.venue}")
        exchange, own = self.client, False
        failures = 0
        self._outage = self._missing_since
        first = True
        conn: _Conn | None = None
        try:
            while not self.stop.is_set():
                if failures:
                    delay = backoff_delay(failures, self.backoff_initial_s, self.backoff_max_s, self._rng)
                    self.log.info("liquidations: reconnecting in {:.2f} s (attempt {})", delay, failures + 1)
                    if await self._sleep(delay):
                        break
                conn = self._open(exchange, own)
                self.log.info("liquidations: connecting{} ({} symbols{}: {})", "" if first else f" (attempt {failures + 1})",
                              len(self.unified), ", all-symbols stream" if self.all_symbols else "", _names(list(self.symbols)))
                try:
                    conn = await self._supervise(conn)
                    break  # stop was set
                except _Failure as f:
                    failed_conn = f.conn or conn
                    self.stats.failures += 1
                    if failed_conn.acked_ns is not None and time.monotonic() - (failed_conn.acked_mono or 0) >= self.stable_after_s:
                        failures = 0
                    failures += 1
                    if failed_conn.acked_ns is None and first and self._outage is None:
                        start = failed_conn.opened_ns  # never connected yet: the stream's start
                    else:
                        start = f.start_ns - IN_FLIGHT_NS
                    if self._outage is None:
                        self._outage = (start, f.reason)
                    self.log.warning("liquidations: connection lost: {} (failure {} in a row)", f.reason, failures)
                    exchange, own = failed_conn.exchange, failed_conn.own_exchange
                    await self._close(failed_conn, close_exchange=False)
                    conn = None
                finally:
                    first = False
            if self._outage is not None:
                start, reason = self._outage
                self._outage = None
                await self._report_gap(start, time.time_ns(), reason + " (stream stopped before reconnecting)")
        finally:
            for c in list(self._conns.values()):
                await self._close(c, close_exchange=c.own_exchange)
            if own and exchange is not None:
                with contextlib.suppress(Exception):
                    await exchange.close()
            self._ready.set()
            await self._drain(deliver)
            self.log.info("liquidations: stopped ({} delivered, {} duplicates dropped, {} gaps, {} reconnects)",
                          self.stats.delivered, self.stats.duplicates, self.stats.gaps, self.stats.failures)

    @property
    def queued(self) -> int:
        """Liquidations received and not yet handed to `on_event`."""
        return len(self._queue)

    def complete_until_ns(self, margin_ns: int = 2 * NS) -> int:
        """Everything the venue sent before this instant has been handed to `on_event`.

        `margin_ns` covers frames still in flight (socket buffers, ccxt's parser). Used by a
        collector to say, after a crash, from when data may be missing.
        """
        until = time.time_ns() - margin_ns
        if self._outage is not None:
            until = min(until, self._outage[0])
        if self._queue:
            until = min(until, self._queue[0].ts_event - margin_ns)
        return until

    # -- connections ------------------------------------------------------------------------

    def _install_hook(self, exchange: Any) -> None:
        if getattr(exchange, "_liquidation_hook", None) is self:
            return
        original = exchange.handle_message
        recorder = getattr(exchange, "derivs_recorder", None)  # `record: true` (venues/recording.py)

        def handle_message(ws_client: Any, message: Any) -> Any:
            try:
                is_liq = self._is_liq(message)
                self._on_raw(exchange, ws_client, message, is_liq)
                if is_liq:
                    if recorder is not None:  # replayed by `python -m emulator --replay`
                        recorder.frame(getattr(ws_client, "url", ""), message)
                    # taken whole above; ccxt's own parser (25-90 us a row, a cascade batch holds
                    # hundreds) would only refill its capped cache and resolve a watch nobody reads
                    return None
            except Exception:  # our bug must not break ccxt's receive loop
                self.log.exception("liquidations: raw message handler failed")
            return original(ws_client, message)

        exchange.handle_message = handle_message
        exchange._liquidation_hook = self
        # a quiet but healthy socket must still show a frame (a pong) well within the timeout
        keep_alive = int(self.silence_timeout_s * 1000 / 3)
        streaming = dict(getattr(exchange, "streaming", None) or {})
        if streaming.get("keepAlive", keep_alive + 1) > keep_alive:
            streaming["keepAlive"] = keep_alive
            exchange.streaming = streaming

    def _open(self, exchange: Any, own: bool) -> _Conn:
        self._install_hook(exchange)
        self._next_cid += 1
        expected = 1 if self.venue == "binance" else len(self.unified)
        conn = _Conn(self._next_cid, exchange, own, expected)
        self._conns[id(exchange)] = conn
        if self.venue == "binance":
            conn.watchers.append(asyncio.create_task(self._watch(conn, None)))
        else:
            conn.watchers.extend(asyncio.create_task(self._watch(conn, s)) for s in self.unified)
        return conn

    async def _watch(self, conn: _Conn, symbol: str | None) -> None:
        """Keep ccxt's watch pending (it dials, subscribes, pings); results come via the hook."""
        ex = conn.exchange
        while True:
            if symbol is None:
                await ex.watch_liquidations_for_symbols([] if self.all_symbols else self.unified)  # []: !forceOrder@arr
            else:
                await ex.watch_liquidations(symbol)

    async def _close(self, conn: _Conn, *, close_exchange: bool) -> None:
        if self._conns.get(id(conn.exchange)) is conn:
            del self._conns[id(conn.exchange)]
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
            await asyncio.wait_for(ws.close(), 2.0)
        except BaseException:  # noqa: BLE001 - best effort; then drop the transport
            connection = getattr(ws, "connection", None)
            transport = getattr(getattr(connection, "_response", None), "connection", None)
            with contextlib.suppress(Exception):
                if transport is not None and transport.transport is not None:
                    transport.transport.abort()

    async def _supervise(self, conn: _Conn) -> _Conn:
        """Watch the connection until stop (returns) or failure (raises _Failure)."""
        next_conn: _Conn | None = None
        rotate_after = time.monotonic() + self.max_connection_age_s if self.max_connection_age_s else None
        while True:
            if self.stop.is_set():
                if next_conn is not None:
                    await self._close(next_conn, close_exchange=True)
                return conn
            self._check(conn)  # raises _Failure
            if conn.acked_ns is not None and conn.acked_mono is None:
                conn.acked_mono = time.monotonic()
                self.stats.connects += 1
                if self._outage is not None:
                    start, reason = self._outage
                    self._outage = None
                    await self._report_gap(start, conn.acked_ns, reason)
                    self.log.info("liquidations: subscribed again after {:.2f} s outage", (conn.acked_ns - start) / NS)
                else:
                    self.log.info("liquidations: subscribed ({} symbols)", len(self.unified))
            # -- rotation before the venue's connection age limit
            if rotate_after is not None and time.monotonic() >= rotate_after and next_conn is None:
                if self.client_factory is None:
                    raise _Failure(f"planned reconnect: connection older than {self.max_connection_age_s:.0f} s", time.time_ns())
                try:
                    fresh = self.client_factory()
                    if getattr(conn.exchange, "markets", None):
                        fresh.set_markets(conn.exchange.markets)
                    next_conn = self._open(fresh, True)
                    self.log.info("liquidations: opening a replacement connection (age limit)")
                except Exception as exc:
                    self.log.warning("liquidations: replacement connection failed to start: {}", describe(exc, REASON_CHARS))
                    rotate_after = time.monotonic() + 60
            if next_conn is not None:
                try:
                    self._check(next_conn)
                except _Failure as f:
                    self.log.warning("liquidations: replacement connection failed: {}; keeping the old one", f.reason)
                    await self._close(next_conn, close_exchange=True)
                    next_conn, rotate_after = None, time.monotonic() + 60
                else:
                    if next_conn.acked_ns is not None:
                        next_conn.acked_mono = time.monotonic()
                        old, conn, next_conn = conn, next_conn, None
                        self.stats.rotations += 1
                        self.stats.connects += 1
                        self.log.info("liquidations: switched to the replacement connection (no gap)")
                        await self._close(old, close_exchange=old.own_exchange)
                        rotate_after = time.monotonic() + self.max_connection_age_s
            await self._sleep(self.check_interval_s)

    def _check(self, conn: _Conn) -> None:
        for t in conn.watchers:
            if t.done() and not t.cancelled() and t.exception() is not None:
                reason = describe(t.exception(), REASON_CHARS)
                if "keepalive" in reason:  # ccxt's own pong check: the socket went silent
                    reason = f"silence: no pong ({reason})"
                raise _Failure(reason, conn.last_alive_ns(), conn)
        if conn.error is not None:
            raise _Failure(f"subscription refused: {conn.error}", conn.last_alive_ns(), conn)
        now = time.monotonic()
        if conn.acked_ns is None:
            if now - conn.opened_mono > self.ack_timeout_s:
                raise _Failure(f"no subscription acknowledgement within {self.ack_timeout_s:.0f} s", conn.last_alive_ns(), conn)
            return
        last = conn.last_alive_ns()
        if time.time_ns() - last > self.silence_timeout_s * NS:
            raise _Failure(f"silence: no message and no pong for {self.silence_timeout_s:.0f} s", last, conn)

    # -- messages ---------------------------------------------------------------------------

    def _on_raw(self, exchange: Any, ws_client: Any, message: Any, is_liq: bool) -> None:
        conn = self._conns.get(id(exchange))
        if conn is None:
            return
        if conn.ws is None:
            conn.ws = ws_client
        elif conn.ws is not ws_client:
            return  # a frame of a socket being closed
        now = time.time_ns()
        conn.last_frame_ns = now
        if is_liq:
            events, skipped = self._normalize(message, self.symbols, now)
            if skipped:
                self.stats.skipped += len(skipped)
                self.log.debug("liquidations: skipped {} row(s): {}", len(skipped), "; ".join(sorted(set(skipped))))
            self.stats.received += len(events)
            for ev in events:
                if self.dedup.admit(liquidation_key(ev), ev.ts_event, conn.cid):
                    self._queue.append(ev)
                else:
                    self.stats.duplicates += 1
            if events:
                self._ready.set()
            return
        ack = self._ack(message)
        if ack is not None:
            ok, error = ack
            if ok:
                conn.acks += 1
                if conn.acks >= conn.expected_acks and conn.acked_ns is None:
                    conn.acked_ns = now
            else:
                conn.error = error

    async def _deliver(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                ev = self._queue.popleft()
                try:
                    await self.on_event(ev)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.log.exception("liquidations: on_event failed for {}", ev)
                self.stats.delivered += 1
                self.stats.last_event_ns = ev.ts_event

    async def _drain(self, deliver: asyncio.Task, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline and not deliver.done():
            await asyncio.sleep(0.01)
        deliver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await deliver

    async def _report_gap(self, start_ns: int, end_ns: int, reason: str) -> None:
        self.stats.gaps += 1
        self.log.warning("liquidations: gap {:.3f} s ({}): events between {} and {} may be missing",
                         (end_ns - start_ns) / NS, reason, start_ns, end_ns)
        try:
            await self.on_gap(start_ns, end_ns, reason)
        except Exception:
            self.log.exception("liquidations: on_gap failed")

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stop is set first; True if stopped."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
            return True
        except TimeoutError:
            return False
