"""Owns the request-rate limits of the emulated venues: windows, bans, counters and controls.

One `Limiter` per venue app, installed as a middleware by `emulator/server.py`. It counts every
REST request (control paths under `/_emulator/` and WebSocket upgrades are free) and answers as
the venue does once a limit is exceeded; each venue's rules, weights, headers and answers come
with it as a `LimitRules` (`emulator/<venue>/limits.py`):

| venue | limits (per IP) | header on every answer | over the limit | kept going anyway |
|---|---|---|---|---|
| Binance | REQUEST_WEIGHT 2400 / 1 min (fixed minutes); `/fapi/v1/fundingRate` + `/fapi/v1/fundingInfo` 500 requests / 5 min; `/futures/data/*` 1000 requests / 5 min | `X-MBX-USED-WEIGHT-1M` | HTTP 429 `{"code":-1003}` + `Retry-After` (s) | HTTP 418 ban + `Retry-After`, 2 min, doubling |
| Bybit | 600 requests / 5 s (rolling) | `X-Bapi-Limit`, `X-Bapi-Limit-Status`, `X-Bapi-Limit-Reset-Timestamp` | HTTP 200 `retCode` 10006 "Too many visits!" | HTTP 403 "access too frequent", 10 min |
| Hyperliquid | weight 1200 / 1 min (rolling); info weight 20 (2 for l2Book, allMids, clearinghouseState, orderStatus, spotClearinghouseState, exchangeStatus; 60 for userRole) | none | HTTP 429 (no Retry-After) | 429 again |

Weights (Binance): premiumIndex 1 with a symbol and 10 without, fundingInfo 0 (it counts against
the 500 / 5 min only), everything else here 1 (openInterest of every one of ~540 perpetuals: 540).
"Kept going anyway" = `BAN_AFTER` requests that arrive while the last limit answer's wait has
not expired. The Bybit mapping of 10006 to the IP limit and the `/futures/data` bucket are the
emulator's choices (the venues document them per UID / loosely): see docs/venue-faults.md.

Controls (every venue):
- `GET /_emulator/ratelimit`: counters (requests, limited, banned, early = requests sent before a
  Retry-After expired), the weight used per rule, the settings.
- `POST /_emulator/ratelimit?enabled=0|1&scale=S`: on/off; `scale` multiplies every window and
  ban length (0.1 = Binance's minute lasts 6 s) so tests reach a limit quickly; limits unchanged.
- `POST /_emulator/ratelimit/consume?weight=N[&rule=NAME]`: another program on the same IP uses
  N of a rule's budget now.
- `POST /_emulator/ratelimit/reset`: counters, windows and bans back to zero.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from loguru import logger

from emulator.common import as_middleware, json_response

BAN_AFTER = 3  # requests sent while told to wait, before a ban
IN_FLIGHT_S = 0.05  # requests arriving this soon after a limit answer were sent before it was read
LIMITER = web.AppKey("ratelimit_limiter", object)


@dataclass
class Rule:
    """One limit: at most `limit` weight per `window_s` (fixed, epoch-aligned windows or rolling)."""

    name: str
    limit: int
    window_s: float
    fixed: bool
    used_fixed: tuple[int, float] = (0, 0.0)  # (window index, weight) for fixed windows
    log: collections.deque = field(default_factory=collections.deque)  # (t, weight) for rolling ones

    def used(self, now: float, scale: float) -> float:
        w = self.window_s * scale
        if self.fixed:
            index, used = self.used_fixed
            return used if index == math.floor(now / w) else 0.0
        while self.log and self.log[0][0] <= now - w:
            self.log.popleft()
        return sum(weight for _, weight in self.log)

    def add(self, now: float, scale: float, weight: float) -> None:
        if self.fixed:
            index = math.floor(now / (self.window_s * scale))
            self.used_fixed = (index, self.used(now, scale) + weight)
        else:
            self.log.append((now, weight))

    def reset_in(self, now: float, scale: float, weight: float) -> float:
        """Seconds until `weight` more would fit."""
        w = self.window_s * scale
        if self.fixed:
            return (math.floor(now / w) + 1) * w - now
        excess = self.used(now, scale) + weight - self.limit
        for t, wt in self.log:
            excess -= wt
            if excess <= 0:
                return t + w - now
        return w


def no_headers(rules: dict[str, Rule], now: float, scale: float) -> dict[str, str]:
    """A venue that sends no usage headers."""
    return {}


@dataclass(frozen=True)
class LimitRules:
    """One venue's limits, the weight of its requests and its answers once a limit is exceeded."""

    rules: Callable[[], list[Rule]]  # a fresh set of its limits
    weights: Callable[[web.Request, bytes], dict[str, float] | None]  # rule -> weight; None: not limited
    limited: Callable[[float, Rule, float, int], web.StreamResponse]  # (now, rule, wait s, Retry-After s)
    banned: Callable[[float, float], web.StreamResponse]  # (now, banned until)
    headers: Callable[[dict[str, Rule], float, float], dict[str, str]] = no_headers  # (rules, now, scale)
    ban_s: float | None = None  # the first ban's length (doubling); None: the venue does not ban
    # (wait s, Retry-After s) -> how long its limit answer tells a client to wait; None: it names no wait
    told_wait: Callable[[float, int], float] | None = None


class Limiter:
    """The limits of one venue app, and its counters."""

    def __init__(self, venue: str, limits: LimitRules, *, enabled: bool = True, scale: float = 1.0,
                 clock: Callable[[], float] = time.time):
        self.venue, self.limits, self.enabled, self.scale, self.clock = venue, limits, enabled, scale, clock
        self.weights = limits.weights
        self.reset()

    def reset(self) -> None:
        self.rules = {r.name: r for r in self.limits.rules()}
        self.counts = collections.Counter()
        self.wait_until = 0.0  # the last limit answer told the client to wait until then
        self.answered_at = 0.0  # when the last limit answer was given
        self.ban_until = 0.0
        self.bans = 0
        self.early = 0  # requests that arrived while a Retry-After had not expired

    def state(self) -> dict:
        now = self.clock()
        return {
            "venue": self.venue, "enabled": self.enabled, "scale": self.scale,
            "requests": self.counts["requests"], "limited": self.counts["limited"], "banned": self.counts["banned"],
            "early": self.early,
            "rules": {r.name: {"limit": r.limit, "window_s": r.window_s * self.scale, "used": r.used(now, self.scale)}
                      for r in self.rules.values()},
        }

    def consume(self, rule: str, weight: float) -> None:
        self.rules[rule].add(self.clock(), self.scale, weight)

    # -- the decision ---------------------------------------------------------------------

    def admit(self, weights: dict[str, float]) -> web.StreamResponse | None:
        """None if the request may be served (its weight is counted), else the venue's refusal."""
        now = self.clock()
        self.counts["requests"] += 1
        if now < self.ban_until:
            self.counts["banned"] += 1
            return self.limits.banned(now, self.ban_until)
        if now < self.wait_until and now > self.answered_at + IN_FLIGHT_S:
            self.early += 1
            self.counts["early_streak"] += 1
            if self.limits.ban_s is not None and self.counts["early_streak"] >= BAN_AFTER:
                self.bans += 1
                self.ban_until = now + self.limits.ban_s * self.scale * 2 ** (self.bans - 1)
                self.counts["banned"] += 1
                logger.warning("{} ban: {} requests ignored the wait; banned for {:.1f} s", self.venue,
                               self.counts["early_streak"], self.ban_until - now)
                return self.limits.banned(now, self.ban_until)
        else:
            self.counts["early_streak"] = 0
        over = [r for r in self.rules.values() if r.name in weights and r.used(now, self.scale) + weights[r.name] > r.limit]
        if over:
            wait = max(r.reset_in(now, self.scale, weights[r.name]) for r in over)
            retry_after = max(1, math.ceil(wait))  # whole seconds, as the venues send it
            if self.limits.told_wait is not None:  # a venue that names no wait: nothing a client could ignore
                self.wait_until = max(self.wait_until, now + self.limits.told_wait(wait, retry_after))
            self.counts["limited"] += 1
            if now > self.answered_at + IN_FLIGHT_S:
                self.answered_at = now
            logger.info("{} rate limit {} exceeded: refused, retry after {:.2f} s", self.venue, over[0].name, wait)
            return self.limits.limited(now, over[0], wait, retry_after)
        for name, weight in weights.items():
            self.rules[name].add(now, self.scale, weight)
        return None

    def headers(self) -> dict[str, str]:
        """Usage headers sent with every answer."""
        return self.limits.headers(self.rules, self.clock(), self.scale)


class LimiterEndpoints:
    """The limiter of one venue app as a middleware, and its `/_emulator/ratelimit` controls."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    def install(self, app: web.Application) -> None:
        app.middlewares.append(as_middleware(self.middleware))
        app.add_routes([
            web.get("/_emulator/ratelimit", self.status),
            web.post("/_emulator/ratelimit", self.configure),
            web.post("/_emulator/ratelimit/consume", self.consume),
            web.post("/_emulator/ratelimit/reset", self.reset),
        ])

    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Every venue request: counted against its rules, refused as the venue does when over a limit;
        the usage headers go on every answer."""
        limiter = self.limiter
        if not limiter.enabled or request.path.startswith("/_emulator/"):
            return await handler(request)
        weights = limiter.weights(request, await request.read())  # read() is cached: the handler reads it again
        if weights is None:
            return await handler(request)
        refusal = limiter.admit(weights)
        response = refusal if refusal is not None else await handler(request)
        response.headers.update(limiter.headers())
        return response

    async def status(self, request: web.Request) -> web.Response:
        """GET /_emulator/ratelimit: counters, weight used per rule, settings."""
        return json_response(self.limiter.state())

    async def configure(self, request: web.Request) -> web.Response:
        """POST /_emulator/ratelimit?enabled=0|1&scale=S: on/off; scale every window and ban (resets)."""
        q, limiter = request.query, self.limiter
        try:
            if "enabled" in q:
                limiter.enabled = q["enabled"].lower() in ("1", "true", "yes", "on")
            if "scale" in q:
                scale = float(q["scale"])
                if not 0 < scale <= 10:
                    raise ValueError(scale)
                limiter.scale = scale
                limiter.reset()
        except ValueError:
            raise web.HTTPBadRequest(text=f"scale must be a number in (0, 10], got {q.get('scale')!r}") from None
        return json_response(limiter.state())

    async def consume(self, request: web.Request) -> web.Response:
        """POST /_emulator/ratelimit/consume?weight=N[&rule=NAME]: another program on the IP uses N."""
        limiter = self.limiter
        rule = request.query.get("rule") or next(iter(limiter.rules))
        if rule not in limiter.rules:
            raise web.HTTPBadRequest(text=f"unknown rule {rule!r}; {limiter.venue} has {sorted(limiter.rules)}")
        try:
            weight = float(request.query.get("weight", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text=f"weight must be a number, got {request.query.get('weight')!r}") from None
        limiter.consume(rule, weight)
        return json_response(limiter.state())

    async def reset(self, request: web.Request) -> web.Response:
        """POST /_emulator/ratelimit/reset: counters, windows and bans back to zero."""
        self.limiter.reset()
        return json_response(self.limiter.state())


def install(app: web.Application, venue: str, limits: LimitRules, *, enabled: bool = True, scale: float = 1.0) -> Limiter:
    """Add the limiter middleware and its control routes to a venue app (before it starts)."""
    limiter = Limiter(venue, limits, enabled=enabled, scale=scale)
    app[LIMITER] = limiter
    LimiterEndpoints(limiter).install(app)
    return limiter
