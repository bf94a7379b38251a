"""Real-time liquidations of one venue, with ccxt.pro, that survive bursts, drops and silence.

    stream = LiquidationStream(adapter, client_pro, StreamScope(markets=markets), on_event, on_gap, stop)
    await stream.run()          # returns once `stop` is set (or raises on a programming error)

Owns the stream's life: connecting, reconnecting with backoff, replacing a connection before the
venue's age limit, and the public view (`queued`, `complete_until_ns`, `stats`). It works
through the venue's `LiquidationFeed` (`adapter.liquidations`, `venues/<venue>/liquidations.py`)
and never asks which venue it is. Its parts, one module each:

- `venues/liquidation_connection.py`: connection and subscription (ccxt.pro dials, subscribes,
  pings; a hook on its `handle_message` takes every raw frame), and a connection's health.
- `venues/liquidation_delivery.py`: bursts and duplicates. ccxt.pro's `watch_liquidations*`
  resolve one future per message hash, so a burst of N liquidations handled in one read reaches
  the caller as 1, the rest only sit in a 1000-entry ring a cascade overruns; here every raw
  frame is parsed, and its events wait in memory for `on_event`: nothing is lost in a burst.
- `venues/liquidation_gaps.py`: every outage becomes one `on_gap(start_ns, end_ns, reason)`.
- `venues/liquidation_config.py`: `StreamScope`, `StreamConfig`, `StreamStats`.

What this module adds to ccxt.pro (venues.md "Things that bite"):

- Reconnects. ccxt.pro does not reconnect by itself: a dropped socket rejects the pending watch
  with `NetworkError` and the next `watch_*` call dials again. Here every failure (error, a
  subscription refused or not acknowledged, silence) closes the socket, waits with exponential
  backoff and full jitter (`backoff_initial_s` doubling up to `backoff_max_s`, times 0.5-1.0;
  reset once a connection has been healthy for `stable_after_s`), logs each attempt, and
  re-subscribes.
- Silence. A socket can stay open while the venue sends nothing (reported for Hyperliquid, and
  how a half-dead TCP path looks): no frame and no pong for `silence_timeout_s` forces a
  reconnect. (ccxt's own check, 2 missed pongs, may fire first; either way it is silence.)
- Connection age (Binance closes every connection after 24 h). With a `client_factory`, the
  stream opens a replacement connection on a fresh client at the venue's
  `max_connection_age_s` (23.5 h on Binance), waits for its subscription acknowledgement, and
  closes the old one `ROTATION_OVERLAP_S` later: both deliver during the overlap and the
  de-duplication drops the doubles, so there is no hole. Without a factory it reconnects in
  place at that age and reports the (short) planned gap.
- All symbols: with `scope.all_markets`, the stream subscribes to the venue's all-symbols
  channel (Binance `!forceOrder@arr`) and keeps the liquidations of every market in that list
  (their instrument ids come from those ccxt markets). A venue without one refuses it.
- A venue without a public liquidation feed (Hyperliquid): the constructor raises
  `LiquidationsUnsupported` with the venue's reason; the caller logs it and goes on.

Supervision waits on events (an acknowledgement, a refusal, a failed watch, stop) under
`asyncio.timeout` until the next deadline (ack timeout, silence, rotation), never polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec
from loguru import logger

from venues import ADAPTERS
from venues.base import Market, VenueAdapter, backoff_delay, describe
from messages.timeunits import NS
from venues.liquidation_config import REASON_CHARS, StreamConfig, StreamScope, StreamStats
from venues.liquidation_connection import Connection, ConnectionLost, Connections
from venues.liquidation_delivery import Delivery, OnEvent
from venues.liquidation_gaps import IN_FLIGHT_NS, OnGap, Outages
from venues.liquidations import LiquidationsUnsupported, symbol_map

__all__ = ["LiquidationStream", "LiquidationsUnsupported", "StreamConfig", "StreamScope", "StreamStats"]

# After the replacement's acknowledgement the old connection stays open this long: frames it had
# in flight still arrive (what both deliver, the de-duplication drops).
ROTATION_OVERLAP_S = 0.25
RETRY_ROTATION_S = 60.0  # a replacement connection that failed is tried again this much later
WAKE_SLACK_S = 0.005  # wake this much after a deadline, so that the check it is for is due
DEFAULT_CONFIG = StreamConfig()


class LiquidationStream:
    """Liquidations of `scope.markets` on one venue, each passed once to `on_event` (module doc).

    - `adapter`: the venue adapter (`venues.adapter("binance")`); its `liquidations` feed.
    - `client_pro`: a ccxt.pro client of that venue (`adapter.client(sandbox_url, pro=True)`),
      owned by the caller (who closes it); used for the first connection.
    - `scope`: what to watch (`StreamScope`); `self.markets` is every market watched.
    - `on_event(liquidation)`: awaited once per liquidation, in arrival order.
    - `on_gap(start_ns, end_ns, reason)`: awaited once per outage, when it is over (or at stop).
    - `stop`: set it to end `run()`.
    - `config`: timeouts, backoff, connection age, de-duplication window (`StreamConfig`).
    - `client_factory()`: a fresh ccxt.pro client of the same venue, for hole-free rotation
      before the venue's age limit; the stream closes the clients it creates.
    """

    def __init__(self, adapter: VenueAdapter, client_pro: Any, scope: StreamScope, on_event: OnEvent, on_gap: OnGap,
                 stop: asyncio.Event, config: StreamConfig = DEFAULT_CONFIG,
                 client_factory: Callable[[], Any] | None = None) -> None:
        feed = adapter.liquidations
        feed.require()  # raises LiquidationsUnsupported (Hyperliquid)
        if not scope.markets:
            raise ValueError("no markets to watch")
        if scope.all_markets is not None and feed.all_symbols_stream is None:
            raise LiquidationsUnsupported(
                f"liquidation_all_symbols: {adapter.name} has no all-symbols liquidation stream "
                f"(only {_all_symbols_streams()}); list the symbols instead")
        self.adapter, self.client, self.stop, self.client_factory = adapter, client_pro, stop, client_factory
        self.config = config
        age = config.max_connection_age_s
        self.max_connection_age_s = feed.max_connection_age_s if age is msgspec.UNSET else age
        self.all_symbols = scope.all_markets is not None
        self.markets = list({m["symbol"]: m for m in [*scope.markets, *(scope.all_markets or [])]}.values())
        self.symbols = symbol_map(adapter, self.markets)
        self.unified = [m["symbol"] for m in self.markets]
        self.venue = adapter.name
        self.stats = StreamStats()
        self.log = logger.bind(venue=adapter.venue)
        self.delivery = Delivery(on_event, int(config.dedup_window_s * NS), self.stats, self.log)
        self.connections = Connections(feed, self.symbols, self.unified, self.all_symbols, config, self.delivery.offer,
                                       self.stats, self.log)
        self.outages = Outages(on_gap, self.stats, self.log, scope.missing_since)
        self._rng = random.Random()
        self._replacement: Connection | None = None  # opened before the age limit, not yet in use
        self._rotate_at: float | None = None  # when to open it (monotonic); None: no age limit

    # -- public -----------------------------------------------------------------------------

    async def run(self) -> None:
        deliver = asyncio.create_task(self.delivery.run(), name=f"liq-deliver-{self.venue}")
        stopping = asyncio.create_task(self._wake_on_stop())
        exchange, own = self.client, False
        failures = 0
        first = True
        try:
            while not self.stop.is_set():
                if failures:
                    delay = backoff_delay(failures, self.config.backoff_initial_s, self.config.backoff_max_s, self._rng)
                    self.log.info("liquidations: reconnecting in {:.2f} s (attempt {})", delay, failures + 1)
                    if await self._stopped_within(delay):
                        break
                conn = self.connections.open(exchange, own)
                self.log.info("liquidations: connecting{} ({} symbols{}: {})", "" if first else f" (attempt {failures + 1})",
                              len(self.unified), ", all-symbols stream" if self.all_symbols else "", _names(list(self.symbols)))
                try:
                    await self._supervise(conn)
                    break  # stop was set
                except ConnectionLost as lost:
                    failed = lost.conn or conn
                    self.stats.failures += 1
                    if failed.acked_ns is not None and time.monotonic() - (failed.acked_mono or 0) >= self.config.stable_after_s:
                        failures = 0
                    failures += 1
                    if failed.acked_ns is None and first and self.outages.current is None:
                        self.outages.begin(failed.opened_ns, lost.reason)  # never connected yet: the stream's start
                    else:
                        self.outages.begin(lost.start_ns - IN_FLIGHT_NS, lost.reason)
                    self.log.warning("liquidations: connection lost: {} (failure {} in a row)", lost.reason, failures)
                    exchange, own = failed.exchange, failed.own_exchange
                    await self.connections.close(failed, close_exchange=False)
                finally:
                    first = False
            await self.outages.end(time.time_ns(), " (stream stopped before reconnecting)")
        finally:
            stopping.cancel()
            for c in self.connections.live():
                await self.connections.close(c, close_exchange=c.own_exchange)
            if own and exchange is not None:
                with contextlib.suppress(Exception):
                    await exchange.close()
            await self.delivery.drain(deliver)
            self.log.info("liquidations: stopped ({} delivered, {} duplicates dropped, {} gaps, {} reconnects)",
                          self.stats.delivered, self.stats.duplicates, self.stats.gaps, self.stats.failures)

    def add_markets(self, markets: list[Market]) -> list[Market]:
        """Markets listed while the stream runs: watched from now on (on the all-symbols channel,
        their frames are kept; otherwise every live connection subscribes them). Returns those new here."""
        new = [m for m in markets if m["symbol"] not in self.unified]
        if not new:
            return []
        self.markets.extend(new)
        self.symbols.update(symbol_map(self.adapter, new))  # the same dict and list the connections read
        self.unified.extend(m["symbol"] for m in new)
        for conn in self.connections.live():  # a client that loaded its markets before the listing
            if getattr(conn.exchange, "markets", None) is not None:
                conn.exchange.set_markets([*conn.exchange.markets.values(), *(m for m in new if m["symbol"] not in conn.exchange.markets)])
        if not self.all_symbols:
            self.connections.subscribe_more([m["symbol"] for m in new])
        self.log.info("liquidations: watching {} more: {}", len(new), _names([self.adapter.raw_symbol(m) for m in new]))
        return new

    def remove_markets(self, markets: list[Market]) -> None:
        """Markets delisted: no longer watched (their frames, if any, are skipped; a reconnect no
        longer subscribes them; the venue sends nothing for a delisted symbol)."""
        gone = {m["symbol"] for m in markets}
        self.markets[:] = [m for m in self.markets if m["symbol"] not in gone]
        self.unified[:] = [s for s in self.unified if s not in gone]
        for raw in [raw for raw, (unified, _) in self.symbols.items() if unified in gone]:
            del self.symbols[raw]

    @property
    def queued(self) -> int:
        """Liquidations received and not yet handed to `on_event`."""
        return self.delivery.queued

    def complete_until_ns(self, margin_ns: int = 2 * NS) -> int:
        """Everything the venue sent before this instant has been handed to `on_event`.

        `margin_ns` covers frames still in flight (socket buffers, ccxt's parser). Used by a
        collector to say, after a crash, from when data may be missing.
        """
        until = time.time_ns() - margin_ns
        if self.outages.start_ns is not None:
            until = min(until, self.outages.start_ns)
        if self.delivery.oldest_ns is not None:
            until = min(until, self.delivery.oldest_ns - margin_ns)
        return until

    # -- supervision ------------------------------------------------------------------------

    async def _supervise(self, conn: Connection) -> None:
        """Watch the connection until stop (returns) or failure (raises ConnectionLost); replace
        it before the venue's connection age limit."""
        age = self.max_connection_age_s
        self._replacement, self._rotate_at = None, time.monotonic() + age if age else None
        while True:
            self.connections.changed.clear()  # set from here on: look again at once
            if self.stop.is_set():
                if self._replacement is not None:
                    await self.connections.close(self._replacement, close_exchange=True)
                return
            conn.check(self.config)  # raises ConnectionLost
            if conn.acked_ns is not None and conn.acked_mono is None:
                await self._subscribed(conn)
            if self._rotate_at is not None:
                conn = await self._rotate(conn)
            await self._until_changed(self._next_check_at(conn))

    async def _rotate(self, conn: Connection) -> Connection:
        """Age limit: open a replacement; once it is subscribed (and after the overlap), it
        becomes the connection and the old one is closed. Returns the connection in use."""
        now, replacement = time.monotonic(), self._replacement
        if replacement is None:
            if now >= self._rotate_at:
                self._replacement = self._open_replacement(conn)
                if self._replacement is None:
                    self._rotate_at = now + RETRY_ROTATION_S
            return conn
        try:
            replacement.check(self.config)
        except ConnectionLost as lost:
            self.log.warning("liquidations: replacement connection failed: {}; keeping the old one", lost.reason)
            await self.connections.close(replacement, close_exchange=True)
            self._replacement, self._rotate_at = None, now + RETRY_ROTATION_S
            return conn
        if replacement.acked_ns is not None and replacement.acked_mono is None:
            replacement.acked_mono = now  # both deliver from here on
        if replacement.acked_mono is None or now - replacement.acked_mono < ROTATION_OVERLAP_S:
            return conn
        self._replacement = None
        self.stats.rotations += 1
        self.stats.connects += 1
        self.log.info("liquidations: switched to the replacement connection (no gap)")
        await self.connections.close(conn, close_exchange=conn.own_exchange)
        self._rotate_at = time.monotonic() + self.max_connection_age_s
        return replacement

    def _next_check_at(self, conn: Connection) -> float:
        """When supervision must look again if nothing happens before (monotonic)."""
        deadlines = [conn.next_check_at(self.config)]
        if self._replacement is None:
            if self._rotate_at is not None:
                deadlines.append(self._rotate_at)
        elif self._replacement.acked_mono is not None:
            deadlines.append(self._replacement.acked_mono + ROTATION_OVERLAP_S)
        else:
            deadlines.append(self._replacement.next_check_at(self.config))
        return min(deadlines)

    async def _subscribed(self, conn: Connection) -> None:
        """The venue acknowledged the subscription: an outage in progress is over."""
        conn.acked_mono = time.monotonic()
        self.stats.connects += 1
        start = await self.outages.end(conn.acked_ns)
        if start is not None:
            self.log.info("liquidations: subscribed again after {:.2f} s outage", (conn.acked_ns - start) / NS)
        else:
            self.log.info("liquidations: subscribed ({} symbols)", len(self.unified))

    def _open_replacement(self, conn: Connection) -> Connection | None:
        """A connection on a fresh client, to take over from `conn` once subscribed (None: failed to start)."""
        if self.client_factory is None:
            raise ConnectionLost(f"planned reconnect: connection older than {self.max_connection_age_s:.0f} s",
                                 time.time_ns(), conn)
        try:
            fresh = self.client_factory()
            if getattr(conn.exchange, "markets", None):
                fresh.set_markets(conn.exchange.markets)
            replacement = self.connections.open(fresh, True)
        except Exception as exc:
            self.log.warning("liquidations: replacement connection failed to start: {}", describe(exc, REASON_CHARS))
            return None
        self.log.info("liquidations: opening a replacement connection (age limit)")
        return replacement

    async def _until_changed(self, deadline: float) -> None:
        """Wait until something changed (`connections.changed`, set on stop too) or `deadline` (monotonic)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + WAKE_SLACK_S):
                await self.connections.changed.wait()

    async def _wake_on_stop(self) -> None:
        await self.stop.wait()
        self.connections.changed.set()

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait `seconds` unless stop is set first; True if stopped."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()
        return self.stop.is_set()


def _names(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _all_symbols_streams() -> str:
    """The venues that have an all-symbols channel, and its name ("binance: !forceOrder@arr")."""
    return ", ".join(f"{name}: {a.liquidations.all_symbols_stream}" for name, a in ADAPTERS.items()
                     if a.liquidations.all_symbols_stream) or "none"
