"""The request budget of a ccxt client: token buckets per venue limit, the venue's usage headers
and its rate-limit answers, read through the venue's own `VenueLimits` (its `limits.py`).

ccxt's own throttle knows one cost per endpoint and one rate per exchange: it lets Hyperliquid
run at twice its 1200/min weight, holds Binance at half of its 2400/min, and knows nothing of
Binance's separate 500 / 5 min funding bucket. So REST clients get this budget instead
(`VenueClient` in `venues/client.py` calls it around every request):

- **Pacing**: one token bucket per venue limit, refilled at `1 - BURST - MARGIN` of the venue's
  rate with `BURST` of it as burst. Any window of the venue's length then carries at most
  `(1 - MARGIN)` of its limit, however the venue aligns its windows.
- **Other programs on the same IP** (the CLI beside a running daemon): the venue's usage headers
  (`VenueLimits.used`) say how much was used. Rolling windows: whatever we did not send ourselves
  is taken out of our tokens. Fixed windows (Binance's minute): the venue's count, plus what we
  sent after the request it answered, is the window's use; nothing leaves that would take it past
  `1 - MARGIN` of the limit before the venue's next window (taking others' use out of the tokens
  instead carried it into the next window as a debt: with 2,000 of 2,400 used by others every
  minute that left one request a minute).
- **A rate-limit answer anyway** (429/418 + `Retry-After`, or what the venue's `VenueLimits`
  calls a refusal or a ban): no request of this client leaves before the wait the venue asked for
  (or an exponential backoff where it names none), the wait is logged, and the call is retried
  (`RETRIES`) unless it was a ban.

Nothing here knows a venue: the tables (limits, weights, headers, error codes) are each venue's
own knowledge (venues.md); the emulator keeps its own copy on purpose, so a test of one against
the other can fail. Import-light (no ccxt): the venues' `limits.py` build on it.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

BURST = 0.05  # of the limit, spendable at once
MARGIN = 0.02  # of the limit, never used (clock skew, requests in flight at a window edge)
GUARD_S = 0.05  # added to every wait a venue asks for
JITTER_S = 0.1  # requests paced in time can arrive bunched by this much: count it into the window
RETRIES = 3  # attempts of one call that meets rate-limit answers (never after a ban)
BACKOFF_S = 1.0  # first wait after a rate-limit answer that names none; doubles


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    limit: float
    window_s: float
    fixed: bool  # the venue counts in epoch-aligned windows (matters to read its usage header)


class VenueLimits:
    """One venue's request limits and how it says "too many" (each venue's `limits.py` subclasses
    it). The defaults are plain HTTP: 429 refuses, 418 bans, `Retry-After` names the wait."""

    limits: tuple[Limit, ...] = ()
    ban_s: float | None = None  # a ban that names no wait lasts this long (the venue's docs)

    def weights(self, method: str, url: str, body: Any) -> dict[str, float]:
        """What one request costs against each of the venue's limits (by `Limit.name`)."""
        raise NotImplementedError

    def used(self, headers: dict[str, str]) -> dict[str, float]:
        """Weight the venue says it counted in its current window, per limit, from an answer's
        headers (lower-case keys); KeyError / ValueError mean "unreadable" and are ignored."""
        return {}

    def banned(self, status: int) -> bool:
        return status == 418

    def refused(self, status: int, body: str) -> bool:
        """A rate-limit answer (the venue may also say so in the body of an HTTP 200)."""
        return status in (418, 429)

    def reset_in_s(self, headers: dict[str, str], body: str) -> float | None:
        """Seconds until the venue's window resets, when a refusal says so (beyond Retry-After)."""
        return None


class Bucket:
    """Token bucket of one limit (monotonic clock), plus what we sent, to read the venue's count."""

    def __init__(self, limit: Limit, scale: float):
        self.limit = limit
        self.window = limit.window_s * scale
        self.capacity = limit.limit * BURST
        self.rate = limit.limit * (1 - BURST - MARGIN) / (self.window + JITTER_S)
        self.tokens = self.capacity
        self.at = time.monotonic()
        self.sent: deque[tuple[float, float, float]] = deque()  # (monotonic, wall, weight) within a window
        self.external = (0, 0.0)  # (window key, weight others used that we already took out)
        self.counted = (0, 0.0, 0.0)  # fixed windows: (window key, the venue's count, wall time our request left)

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, weight: float, now: float) -> float:
        self.refill(now)
        wait = 0.0 if self.tokens >= weight else (weight - self.tokens) / self.rate
        return max(wait, self.window_full_for(weight)) if self.limit.fixed else wait

    def window_full_for(self, weight: float) -> float:
        """Fixed windows: seconds until the venue's next window if `weight` more would take this
        one past `1 - MARGIN` of the limit (the venue's last count plus what we sent since the
        request it answered; before any answer in this window, what we sent in it), else 0."""
        wall = time.time()
        key = math.floor(wall / self.window)
        counted_key, count, since = self.counted
        if counted_key == key:
            use = count + sum(w for _, t, w in self.sent if t > since)
        else:
            use = sum(w for _, t, w in self.sent if math.floor(t / self.window) == key)
        if use + weight <= self.limit.limit * (1 - MARGIN):
            return 0.0
        return (key + 1) * self.window - wall + GUARD_S

    def take(self, weight: float, now: float) -> float:
        """Count a request of this weight; returns the wall time it was counted at."""
        self.tokens -= weight
        wall = time.time()
        self.sent.append((now, wall, weight))
        while self.sent and self.sent[0][0] < now - self.window:
            self.sent.popleft()
        return wall

    def venue_used(self, used: float, now: float, sent_wall: float | None = None) -> float:
        """The venue counted `used` in its current window (answering our request that left at
        `sent_wall`): fixed windows keep the count (`window_full_for`), rolling ones take out of
        our tokens what others spent. Returns what others spent, as far as we can tell."""
        wall = time.time()
        if self.limit.fixed:
            key = math.floor(wall / self.window)
            mine = sum(w for _, t, w in self.sent if math.floor(t / self.window) == key)
            since = wall if sent_wall is None else sent_wall
            counted_key, _, counted_since = self.counted
            if counted_key != key or since >= counted_since:  # the latest answer of this window counts
                self.counted = (key, used, since)
            return max(0.0, used - mine)
        else:
            key = math.floor(now / self.window)  # rolling: forget what we took out a window ago
            mine = sum(w for t, _, w in self.sent if t > now - self.window)
        others = max(0.0, used - mine)
        seen_key, seen = self.external
        already = seen if seen_key == key else 0.0
        if others > already:
            self.refill(now)
            self.tokens -= others - already
            self.external = (key, others)
        return others


# Set by the answer's hook in the task that sent the request: was *this* answer a rate-limit one?
_limit_answer: contextvars.ContextVar[bool] = contextvars.ContextVar("budget_limit_answer", default=False)
# Set by `acquire` in the task that sends the request: when it left (wall time), for the answer's count.
_sent_wall: contextvars.ContextVar[float | None] = contextvars.ContextVar("budget_sent_wall", default=None)


class Budget:
    """The request budget of one client of one venue (`venue`: its name for the log)."""

    def __init__(self, rules: VenueLimits, venue: str, scale: float = 1.0, *, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.rules, self.venue, self.scale, self.clock = rules, venue, scale, clock
        self.buckets = {lim.name: Bucket(lim, scale) for lim in rules.limits}
        self.enabled = enabled
        self.blocked_until = 0.0  # monotonic: no request before this (the venue asked us to wait)
        self.banned = False
        self.limited = 0  # rate-limit answers received
        self.bans = 0
        self.sent = 0
        self.weight = 0.0
        self._strikes = 0  # consecutive rate-limit answers without a wait named by the venue
        self._lock = asyncio.Lock()  # FIFO: callers are served in order, none starves
        self.log = logger.bind(venue=venue)

    async def acquire(self, cost: dict[str, float]) -> None:
        """Wait until a request of this cost may leave, then count it."""
        if not self.enabled:  # an emulator without limits: ccxt's own throttle paces, as without us
            self.sent += 1
            self.weight += sum(cost.values())
            return
        async with self._lock:
            while True:
                now = self.clock()
                wait = max([self.blocked_until - now] + [self.buckets[n].wait_for(w, now) for n, w in cost.items()])
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            for name, w in cost.items():
                _sent_wall.set(self.buckets[name].take(w, now))
            self.sent += 1
            self.weight += sum(cost.values())

    def observe(self, status: int, headers: dict[str, str], body: str | None) -> None:
        """Read one answer of the venue: usage headers, and rate-limit answers."""
        h = {k.lower(): v for k, v in (headers or {}).items()}
        now = self.clock()
        self._read_usage(h, now)
        wait = self._limit_answer(status, h, body or "", now)
        _limit_answer.set(wait is not None)
        if wait is None:
            if 200 <= status < 300:
                self._strikes = 0
                self.banned = False
            return
        self.limited += 1
        for bucket in self.buckets.values():  # our estimate was wrong: start again from empty
            bucket.refill(now)
            bucket.tokens = min(bucket.tokens, 0.0)
        self.blocked_until = max(self.blocked_until, now + wait + GUARD_S)
        until = time.strftime("%H:%M:%S", time.gmtime(time.time() + wait + GUARD_S))
        if self.banned:
            self.bans += 1
            self.log.error("banned by the venue (HTTP {}): no request for {:.1f} s (until {}Z)", status, wait, until)
        else:
            self.log.warning("rate limit answer (HTTP {}): no request for {:.1f} s (until {}Z), then retry", status, wait, until)

    def _read_usage(self, h: dict[str, str], now: float) -> None:
        try:
            for name, used in self.rules.used(h).items():
                self.buckets[name].venue_used(used, now, _sent_wall.get())
        except (KeyError, ValueError):
            pass  # a header we cannot read is no reason to fail the request

    def _limit_answer(self, status: int, h: dict[str, str], body: str, now: float) -> float | None:
        """Seconds the venue asks us to wait, if this answer is a rate-limit refusal."""
        self.banned = self.rules.banned(status)
        if status in (418, 429) and "retry-after" in h:
            try:
                return max(0.0, float(h["retry-after"]))
            except ValueError:
                pass
        if self.banned and self.rules.ban_s is not None:
            return self.rules.ban_s * self.scale
        if self.rules.refused(status, body):
            try:
                reset = self.rules.reset_in_s(h, body)
            except (KeyError, ValueError):
                reset = None
            if reset is not None and reset > 0:
                return reset
            self._strikes += 1
            return min(BACKOFF_S * 2 ** (self._strikes - 1), max(1.0, self.buckets[next(iter(self.buckets))].window))
        return None

    @staticmethod
    def limit_answer() -> bool:
        """Was the last answer this task received a rate-limit one (set by `observe`)?"""
        return _limit_answer.get()

    @staticmethod
    def forget_answer() -> None:
        _limit_answer.set(False)

    def figures(self) -> dict[str, float]:
        return {"sent": self.sent, "weight": self.weight, "limited": self.limited, "bans": self.bans}
