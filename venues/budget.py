"""Each ccxt client's request budget for its venue: weights, pacing, the venue's headers and its
rate-limit answers.

ccxt's own throttle knows one cost per endpoint and one rate per exchange: it lets Hyperliquid
run at twice its 1200/min weight, holds Binance at half of its 2400/min, and knows nothing of
Binance's separate 500 / 5 min funding bucket. So REST clients get this budget instead
(`attach`, done by `VenueAdapter.client`):

- **Pacing**: one token bucket per venue limit, refilled at `1 - BURST - MARGIN` of the venue's
  rate with `BURST` of it as burst. Any window of the venue's length then carries at most
  `(1 - MARGIN)` of its limit, however the venue aligns its windows.
- **Other programs on the same IP** (the CLI beside a running daemon): the venue's usage headers
  (`X-MBX-USED-WEIGHT-1M`, `X-Bapi-Limit-Status`) say how much was used; whatever we did not
  send ourselves is taken out of our tokens.
- **A rate-limit answer anyway** (429/418 + `Retry-After`, Bybit `retCode` 10006 +
  `X-Bapi-Limit-Reset-Timestamp` or HTTP 403, Hyperliquid 429): no request of this client
  leaves before the wait the venue asked for (or an exponential backoff where it names none),
  the wait is logged, and the call is retried (`RETRIES`) unless it was a ban.

The weight table below is the client's own knowledge of the venue (venues.md); the emulator
keeps its own copy on purpose, so a test of one against the other can fail.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ccxt
import msgspec
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


LIMITS: dict[str, tuple[Limit, ...]] = {
    "binance": (Limit("REQUEST_WEIGHT", 2400, 60.0, True), Limit("FUNDING", 500, 300.0, True),
                Limit("DATA", 1000, 300.0, True)),
    "bybit": (Limit("IP", 600, 5.0, False),),
    "hyperliquid": (Limit("WEIGHT", 1200, 60.0, False),),
}
HL_LIGHT = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}
BAN_S = {"bybit": 600.0}  # Bybit's 403 names no wait: its docs say 10 minutes


def weights(venue: str, method: str, url: str, body: Any) -> dict[str, float]:
    """What one request costs against each of the venue's limits."""
    parts = urlsplit(url)
    path = parts.path
    if venue == "binance":
        if "/futures/data/" in path:
            return {"DATA": 1}
        if path.endswith(("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo")):
            return {"REQUEST_WEIGHT": 1, "FUNDING": 1}
        if path.endswith("/fapi/v1/premiumIndex"):
            return {"REQUEST_WEIGHT": 1 if "symbol" in parse_qs(parts.query) else 10}
        return {"REQUEST_WEIGHT": 1}
    if venue == "bybit":
        return {"IP": 1}
    if venue == "hyperliquid":
        try:
            kind = msgspec.json.decode(body or b"{}").get("type")
        except (msgspec.DecodeError, AttributeError):
            kind = None
        return {"WEIGHT": 2 if kind in HL_LIGHT else 60 if kind == "userRole" else 20}
    raise ValueError(f"unknown venue {venue!r}; expected one of {sorted(LIMITS)}")


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

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, weight: float, now: float) -> float:
        self.refill(now)
        return 0.0 if self.tokens >= weight else (weight - self.tokens) / self.rate

    def take(self, weight: float, now: float) -> None:
        self.tokens -= weight
        self.sent.append((now, time.time(), weight))
        while self.sent and self.sent[0][0] < now - self.window:
            self.sent.popleft()

    def venue_used(self, used: float, now: float) -> float:
        """The venue counted `used` in its current window: take out what others spent. Returns it."""
        wall = time.time()
        if self.limit.fixed:
            key = math.floor(wall / self.window)
            mine = sum(w for _, t, w in self.sent if math.floor(t / self.window) == key)
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


class Budget:
    """The request budget of one client of one venue."""

    def __init__(self, venue: str, scale: float = 1.0, *, clock: Callable[[], float] = time.monotonic):
        self.venue, self.scale, self.clock = venue, scale, clock
        self.buckets = {lim.name: Bucket(lim, scale) for lim in LIMITS[venue]}
        self.enabled = True
        self.blocked_until = 0.0  # monotonic: no request before this (the venue asked us to wait)
        self.banned = False
        self.limited = 0  # rate-limit answers received
        self.bans = 0
        self.sent = 0
        self.weight = 0.0
        self._strikes = 0  # consecutive rate-limit answers without a wait named by the venue
        self._lock = asyncio.Lock()  # FIFO: callers are served in order, none starves
        self.log = logger.bind(venue=venue.upper())

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
                self.buckets[name].take(w, now)
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
            if self.venue == "binance" and "x-mbx-used-weight-1m" in h:
                self.buckets["REQUEST_WEIGHT"].venue_used(float(h["x-mbx-used-weight-1m"]), now)
            elif self.venue == "bybit" and "x-bapi-limit-status" in h:
                self.buckets["IP"].venue_used(float(h["x-bapi-limit"]) - float(h["x-bapi-limit-status"]), now)
        except (KeyError, ValueError):
            pass  # a header we cannot read is no reason to fail the request

    def _limit_answer(self, status: int, h: dict[str, str], body: str, now: float) -> float | None:
        """Seconds the venue asks us to wait, if this answer is a rate-limit refusal."""
        self.banned = status == 418 or (self.venue == "bybit" and status == 403)
        if status in (418, 429) and "retry-after" in h:
            try:
                return max(0.0, float(h["retry-after"]))
            except ValueError:
                pass
        if self.banned and self.venue in BAN_S:
            return BAN_S[self.venue] * self.scale
        bybit_10006 = self.venue == "bybit" and '"retCode":10006' in body.replace(" ", "")
        if status in (418, 429) or bybit_10006:
            if bybit_10006 and "x-bapi-limit-reset-timestamp" in h:
                try:
                    reset = float(h["x-bapi-limit-reset-timestamp"]) / 1000 - time.time()
                    if reset > 0:
                        return reset
                except ValueError:
                    pass
            self._strikes += 1
            return min(BACKOFF_S * 2 ** (self._strikes - 1), max(1.0, self.buckets[next(iter(self.buckets))].window))
        return None

    def figures(self) -> dict[str, float]:
        return {"sent": self.sent, "weight": self.weight, "limited": self.limited, "bans": self.bans}


def emulator_limits(base_url: str) -> tuple[bool, float]:
    """(enforced, window scale) of the emulator at `base_url`: the sandbox budget mirrors them, so
    a scaled-down emulator is paced at its own (faster) rate and an unlimited one is not paced.
    An emulator that cannot be asked (down) gets the real venue's limits."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/_emulator/ratelimit", timeout=1.0) as answer:
            state = msgspec.json.decode(answer.read())
        return bool(state["enabled"]), float(state["scale"])
    except (OSError, ValueError, KeyError, TypeError, msgspec.DecodeError):
        return True, 1.0


def attach(client: Any, venue: str, *, scale: float = 1.0, enabled: bool = True, pro: bool = False, on_response: Callable[..., None] | None = None) -> Budget:
    """Put the budget between a ccxt client and its venue (replacing ccxt's REST throttle).

    `on_response(code, url, method, headers, body, request_headers, request_body)` is called for
    every answer too (recording uses it).
    """
    budget = Budget(venue, scale)
    budget.enabled = enabled
    original_fetch, original_on_rest = client.fetch, client.on_rest_response

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        cost = weights(venue, method, url, body)
        for attempt in range(1, RETRIES + 1):
            await budget.acquire(cost)
            _limit_answer.set(False)
            try:
                return await original_fetch(url, method, headers, body)
            except ccxt.BaseError:
                if not _limit_answer.get() or budget.banned or attempt == RETRIES:
                    raise
        raise AssertionError("unreachable")

    def on_rest_response(code, reason, url, method, headers, body, request_headers, request_body):  # noqa: ANN001, ANN202
        budget.observe(code, headers, body)
        if on_response is not None:
            on_response(code, url, method, headers, body, request_headers, request_body)
        return original_on_rest(code, reason, url, method, headers, body, request_headers, request_body)

    client.fetch = fetch
    client.on_rest_response = on_rest_response
    if enabled and not pro:  # ccxt.pro also throttles WebSocket subscriptions with it: leave that on
        client.enableRateLimit = False  # the budget paces REST; ccxt's throttle would halve Binance
    client.budget = budget
    return budget
