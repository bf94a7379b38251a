"""Owns the plumbing every venue app shares: its context (model, recorder, clock), numbers as the
venues print them, JSON answers, listening on a port, request logging and quarterly expiries."""

from __future__ import annotations

import calendar
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from loguru import logger

from emulator.ground_truth import GroundTruth
from emulator.market import Market

_ENCODER = msgspec.json.Encoder()
# Keep-alive connections of clients must not hold shutdown: the CLI promises < 1 s.
_SHUTDOWN_TIMEOUT_S = 0.2
# what a handler adds to its request's log line (Hyperliquid: the info type of its one path)
LOG_DETAIL = web.RequestKey("log_detail", str)


@dataclass(slots=True)
class VenueContext:
    """What a venue app needs: the model, the recorder and a clock (injectable in tests)."""

    venue: str  # "binance" | "bybit" | "hyperliquid"
    market: Market
    recorder: GroundTruth
    clock_ns: Callable[[], int] = field(default=time.time_ns)

    def now_ms(self) -> int:
        return self.clock_ns() // 1_000_000


# -- numbers as the venues print them -----------------------------------------------------


def decimals(step: str) -> int:
    """Number of decimals of a step/tick string: "0.010" -> 3, "1" -> 0."""
    return len(step.split(".", 1)[1]) if "." in step else 0


def fixed(x: float, dp: int) -> str:
    """Fixed decimals, Binance style: fixed(0.0001, 8) -> "0.00010000"."""
    s = f"{x:.{dp}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def stripped(x: float, dp: int) -> str:
    """Rounded to dp, trailing zeros removed, Bybit style: "0.0001", "-0.000212", "5"."""
    s = fixed(x, dp)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


# -- HTTP -----------------------------------------------------------------------------------


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON response encoded with msgspec (fast, exact float repr)."""
    return web.Response(body=_ENCODER.encode(data), status=status, content_type="application/json", headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def as_middleware(method: Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]) -> Callable:
    """A bound method as an aiohttp middleware (aiohttp marks middlewares with an attribute, which a
    bound method cannot carry)."""

    @web.middleware
    async def bound_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await method(request, handler)

    return bound_middleware


async def listen(runners: list[web.AppRunner], app: web.Application, host: str, port: int) -> str:
    """Serve app on host:port (0 = a free port); its runner joins `runners` (to be cleaned up
    even if listening fails). Returns the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    runners.append(runner)
    await web.TCPSite(runner, host, port).start()
    return f"http://{host}:{runner.addresses[0][1]}"


def logging_middleware(venue: str) -> Callable:
    """One DEBUG line per request (venue, method, path, status); unknown paths at WARNING,
    so a ccxt call we do not emulate yet shows up immediately."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                logger.warning("{} unknown path: {} {} -> {}", venue, request.method, request.path_qs, exc.status)
            else:
                logger.debug("{} {} {} {}", venue, request.method, request.path_qs, exc.status)
            raise
        # Hyperliquid has one path: its handler stores the info type under LOG_DETAIL.
        detail = request.get(LOG_DETAIL)
        path = f"{request.path_qs} {detail}" if detail else request.path_qs
        logger.debug("{} {} {} {}", venue, request.method, path, response.status)
        return response

    return middleware


# -- quarterly contracts ---------------------------------------------------------------------


def quarterly_expiry_ms(t_ms: int) -> int:
    """Next quarterly delivery after t_ms: last Friday of Mar/Jun/Sep/Dec, 08:00 UTC (the
    Binance and Bybit convention). A pure function of time, like the market model."""
    now = datetime.fromtimestamp(t_ms / 1000, UTC)
    year, month = now.year, ((now.month - 1) // 3 + 1) * 3
    while True:
        last_day = calendar.monthrange(year, month)[1]
        day = max(d for d in range(last_day - 6, last_day + 1) if calendar.weekday(year, month, d) == 4)
        expiry = int(datetime(year, month, day, 8, tzinfo=UTC).timestamp() * 1000)
        if expiry > t_ms:
            return expiry
        month += 3
        if month > 12:
            year, month = year + 1, month - 12
