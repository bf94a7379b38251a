"""Burst handling of a liquidation stream: every parsed liquidation waits in memory until the
consumer took it, each passed once, in arrival order.

The socket reader (ccxt's receive loop) never waits for the consumer: `offer` only appends, so a
cascade of thousands is read as fast as it arrives and nothing is lost whatever the consumer's
speed. Duplicates are keyed by (instrument, ts_event, side, quantity, price); inside a sliding
window of event time an event is passed on only if its connection has now delivered that key
more often than any other connection did. A venue never repeats itself on one connection, so
this removes exactly what two connections both delivered (the overlap of a rotation, a venue
replay after reconnect) and keeps genuine repeats.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from messages.events import Liquidation
from venues.liquidation_config import StreamStats

OnEvent = Callable[[Liquidation], Awaitable[None]]


def liquidation_key(e: Liquidation) -> tuple:
    return (e.instrument_id, e.ts_event, e.side, e.quantity, e.price)


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


class Delivery:
    """The queue between the socket reader and `on_event` (see module doc)."""

    def __init__(self, on_event: OnEvent, dedup_window_ns: int, stats: StreamStats, log: Any) -> None:
        self.on_event, self.stats, self.log = on_event, stats, log
        self.dedup = DedupWindow(dedup_window_ns)
        self._queue: deque[Liquidation] = deque()
        self._ready = asyncio.Event()  # something to deliver
        self._empty = asyncio.Event()  # nothing waits (a drain's condition)
        self._empty.set()

    def offer(self, events: list[Liquidation], conn_id: int) -> None:
        """Queue the events of one frame of connection `conn_id` (never waits)."""
        self.stats.received += len(events)
        for ev in events:
            if self.dedup.admit(liquidation_key(ev), ev.ts_event, conn_id):
                self._queue.append(ev)
            else:
                self.stats.duplicates += 1
        if self._queue:
            self._empty.clear()
            self._ready.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def oldest_ns(self) -> int | None:
        """ts_event of the oldest liquidation not yet delivered."""
        return self._queue[0].ts_event if self._queue else None

    async def run(self) -> None:
        """Hand queued events to `on_event` until cancelled; its errors are logged, not fatal."""
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
            self._empty.set()

    async def drain(self, runner: asyncio.Task, timeout_s: float = 2.0) -> None:
        """Stopping: let `runner` (the task of `run`) deliver what waits, at most `timeout_s`, then end it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._empty.wait()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
