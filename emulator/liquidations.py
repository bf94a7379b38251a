"""Owns the liquidations of the emulated venues: a seeded generator, cascades on demand, their
ground-truth records and the `/_emulator/` control endpoints (the sockets themselves are
`emulator/websocket.py`'s; what is pushed, and how, is each venue's stream module's).

The model
---------
Every venue app that streams liquidations owns one `LiquidationEngine`. A background task ticks
every `TICK_MS` and, for each listed perpetual, draws

- base liquidations: a Poisson process at `rate` per symbol per second (default
  `DEFAULT_RATE`, set with ``start_emulator(liquidation_rate=...)``, ``python -m emulator
  --liquidation-rate``, or ``POST /_emulator/liquidation_rate?per_second=X``), sides 50/50;
  The rate is that of each reference coin (BTC, ETH, ...); the long tail of the universe together
  liquidates like 1.5 reference coins at the default rate (each symbol its `SymbolSpec.weight`),
  at most: a higher rate (a load test on BTC) leaves it there, 0 stops it too. One Poisson draw per
  tick for the reference coins, one for the tail, each liquidation's symbol picked by weight;
- cascades: ``POST /_emulator/cascade?symbol=BTCUSDT&count=5000&seconds=3[&side=LONG]``
  spreads `count` liquidations over `seconds` (90 % on `side`, default LONG: a falling market
  liquidates longs); ``symbol=all`` (the default) is a market-wide cascade across every listed
  symbol (by the square root of its weight, so the long tail burns too): ``count=20000&seconds=5``
  is 4,000 liquidations per second. Each cascade is also a ground-truth line
  ``{"kind": "cascade", "raw_symbol": "all" | symbol, "count", "seconds", "side", "symbols", "ts_ms"}``.

Sizes are log-normal in USD (median ~5k, fat tail), prices a few bps beyond the mark price on
the liquidated side, both rounded to the venue's tick and lot. The sequence of draws comes
from ``random.Random`` seeded by (market seed, venue), so two emulators with the same seed
generate the same liquidations (timestamps are wall-clock: the venue's time). No two
liquidations of one symbol share (ms, side, quantity, price): a real cascade never repeats
one exactly either, and it keeps the ground truth comparison exact.

What is pushed follows each venue's rules (the venue module decides: Binance keeps only the
latest liquidation per symbol per 1000 ms, Bybit batches all of them per 500 ms).

Ground truth: every pushed liquidation is one JSON line in the emulator's ground-truth file::

    {"venue": "BINANCE", "kind": "liquidation", "endpoint": "/market/ws", "coin": "BTC",
     "raw_symbol": "BTCUSDT", "ts_ms": 1739502302929, "side_raw": "SELL", "side": "LONG",
     "qty": 0.014, "price": 9910.1, "value": 138.74, "push_ms": ..., "sent_ns": ...,
     "connections": 1}

`side_raw` is what the venue's payload says (Binance: the forced order's side; Bybit: the
position's side), `side` the liquidated position's side; `qty`/`price` are the numbers a
client must store (Binance: filled quantity `z` at average price `ap`; Bybit: `v` at `p`).
`connections` is how many sockets it was written to: 0 means the venue published it while no
(responsive) client was subscribed - it is in nobody's stream, which a gap must account for.

Faults (on the venue's own port, so one venue can be hurt alone):

- ``POST /_emulator/drop[?refuse_seconds=N]``: abort every WebSocket (no close frame) and
  refuse new ones with HTTP 503 for N seconds (default 0).
- ``POST /_emulator/silence?seconds=N``: the sockets open now stay open but receive nothing
  and get no pong for N seconds (a zombie subscription); new connections are healthy.
- ``GET /_emulator/liquidations``: counters (generated, pushed, connections).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import difflib
import itertools
import math
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from loguru import logger

from emulator.common import VenueContext, decimals, fixed, json_response
from emulator.websocket import WsHub

TICK_MS = 10
DEFAULT_RATE = 0.2  # base liquidations per symbol per second
CASCADE_SIDE_SHARE = 0.9

LIQUIDATION_RATE = web.AppKey("liquidation_rate", float)
ENGINE = web.AppKey("liquidation_engine", object)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    raw_symbol: str
    coin: str
    tick: str
    step: str
    weight: float = 1.0  # its share of the base rate: 1 for the reference coins, far less for the long tail


@dataclass(frozen=True, slots=True)
class Liq:
    """One liquidation as it happened on the venue (numbers already on the venue's grid)."""

    raw_symbol: str
    coin: str
    ts_ms: int
    side: str  # "LONG" | "SHORT": the liquidated position
    qty: str  # base units, venue-formatted
    price: str  # venue-formatted
    fills: int  # how many fills the forced order took (Binance `l` is the last one's size)
    last_qty: str


@dataclass
class _Cascade:
    raw_symbol: str  # "" = across every listed symbol
    count: int
    seconds: float
    side: str
    start_ms: int
    emitted: int = 0


class LiquidationEngine:
    """Generates liquidations for one venue and hands each tick's batch to the venue's hub."""

    def __init__(self, ctx: VenueContext, symbols: Callable[[], list[SymbolSpec]], rate: float = DEFAULT_RATE) -> None:
        self.ctx = ctx
        self.source = symbols  # the venue's listed perpetuals now (a listing adds one at run time)
        self.symbols: dict[str, SymbolSpec] = {}
        self._listed_version: object = None
        self._specs: list[SymbolSpec] = []
        self._core: list[SymbolSpec] = []  # the reference coins (weight 1): each at `rate`
        self._tail: list[SymbolSpec] = []  # the long tail: together at its weights x min(rate, DEFAULT_RATE)
        self._tail_cum: list[float] = []  # cumulative weights: a tail liquidation picks its symbol by weight
        self._cascade_cum: list[float] = []  # market-wide cascades: by sqrt(weight), the long tail burns too
        self.refresh()
        self.rate = rate
        self.rng = random.Random((ctx.market.seed << 8) ^ zlib.crc32(f"liquidations|{ctx.venue}".encode()))
        self.cascades: list[_Cascade] = []
        self.excluded: set[str] = set()  # delisted symbols (the venue's fault injector's set): no more liquidations
        self.sink: Callable[[list[Liq], int], None] | None = None  # (new liquidations, now_ms)
        self.generated = 0
        self._recent: dict[str, set[tuple]] = {}  # raw_symbol -> keys of the last ms, for uniqueness
        self._recent_ms: dict[str, int] = {}
        self._last_ms: int | None = None
        self._task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"liquidations-{self.ctx.venue}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.tick(self.ctx.now_ms())
            except Exception:  # the emulator must keep serving whatever one tick did
                logger.exception("{} liquidation tick failed", self.ctx.venue)
            await asyncio.sleep(TICK_MS / 1000)

    def refresh(self) -> None:
        """Re-read the listed symbols when the universe changed (a run-time listing)."""
        universe = self.ctx.market.universe
        version = None if universe is None else (id(universe), universe.version)
        if self._specs and version == self._listed_version:
            return
        self._listed_version = version
        self._specs = self.source()
        self.symbols = {s.raw_symbol: s for s in self._specs}
        self._core = [s for s in self._specs if s.weight >= 1.0]
        self._tail = [s for s in self._specs if s.weight < 1.0]
        self._tail_cum = list(itertools.accumulate(s.weight for s in self._tail))
        self._cascade_cum = list(itertools.accumulate(math.sqrt(s.weight) for s in self._specs))

    def _pick(self, cum: list[float], specs: list[SymbolSpec] | None = None) -> SymbolSpec:
        """A symbol drawn with the probabilities of the cumulative weights `cum` (of `specs`: every symbol)."""
        specs = self._specs if specs is None else specs
        return specs[min(len(cum) - 1, bisect.bisect_right(cum, self.rng.random() * cum[-1]))]

    # -- control -----------------------------------------------------------------------------

    def cascade(self, raw_symbol: str, count: int, seconds: float, side: str = "LONG") -> _Cascade:
        """`count` liquidations of raw_symbol ("" = across every listed symbol) over `seconds`."""
        if raw_symbol and raw_symbol not in self.symbols:
            raise KeyError(raw_symbol)
        c = _Cascade(raw_symbol, count, max(seconds, 0.001), side, self.ctx.now_ms())
        self.cascades.append(c)
        return c

    # -- generation --------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Liq]:
        last = self._last_ms if self._last_ms is not None else now_ms
        self._last_ms = now_ms
        dt_ms = max(0, now_ms - last)
        out: list[Liq] = []
        self.refresh()
        if dt_ms and self.rate > 0:  # one Poisson draw per group of symbols, each symbol picked by weight
            base = [(self.rate * len(self._core), None)] if self._core else []
            if self._tail:
                base.append((min(self.rate, DEFAULT_RATE) * self._tail_cum[-1], self._tail_cum))
            for lam, cum in base:
                for _ in range(self._poisson(lam * dt_ms / 1000)):
                    side = "LONG" if self.rng.random() < 0.5 else "SHORT"
                    spec = self._core[self.rng.randrange(len(self._core))] if cum is None else self._pick(cum, self._tail)
                    if spec.raw_symbol not in self.excluded:
                        out.append(self._draw(spec, self._ts_in(last, now_ms), side))
        for c in list(self.cascades):
            elapsed = (now_ms - c.start_ms) / 1000
            due = min(c.count, math.floor(c.count * min(1.0, elapsed / c.seconds))) - c.emitted
            for _ in range(due):
                spec = self.symbols.get(c.raw_symbol) if c.raw_symbol else self._pick(self._cascade_cum)
                if spec is None or spec.raw_symbol in self.excluded:  # its symbol is no longer listed
                    continue
                side = c.side if self.rng.random() < CASCADE_SIDE_SHARE else ("SHORT" if c.side == "LONG" else "LONG")
                out.append(self._draw(spec, self._ts_in(last, now_ms), side))
            c.emitted += max(0, due)
            if c.emitted >= c.count:
                self.cascades.remove(c)
        out.sort(key=lambda q: q.ts_ms)
        self.generated += len(out)
        if self.sink is not None:
            self.sink(out, now_ms)
        return out

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 50:  # the normal approximation: exact enough, and no loop of lam steps
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _ts_in(self, last_ms: int, now_ms: int) -> int:
        return now_ms if now_ms <= last_ms else self.rng.randint(last_ms + 1, now_ms)

    def _draw(self, spec: SymbolSpec, ts_ms: int, side: str) -> Liq:
        tick, step = float(spec.tick), float(spec.step)
        mark = self.ctx.market.mark_price(spec.coin, ts_ms, self.ctx.venue)
        beyond = 0.0005 + 0.004 * self.rng.random()  # liquidated a little beyond the mark
        px = mark * (1 - beyond) if side == "LONG" else mark * (1 + beyond)
        ticks = max(1, round(px / tick))
        notional = math.exp(self.rng.gauss(math.log(5_000), 1.4))
        steps = max(1, round(notional / (ticks * tick) / step))
        fills = 1 if steps < 2 or self.rng.random() < 0.6 else self.rng.randint(2, min(5, steps))
        if self._recent_ms.get(spec.raw_symbol) != ts_ms:
            self._recent_ms[spec.raw_symbol], self._recent[spec.raw_symbol] = ts_ms, set()
        seen = self._recent[spec.raw_symbol]
        while (side, steps, ticks) in seen:  # never two identical liquidations in one ms
            steps += 1
        seen.add((side, steps, ticks))
        last_steps = steps if fills == 1 else max(1, steps // fills)
        pdp, qdp = decimals(spec.tick), decimals(spec.step)
        return Liq(spec.raw_symbol, spec.coin, ts_ms, side, fixed(steps * step, qdp), fixed(ticks * tick, pdp),
                   fills, fixed(last_steps * step, qdp))


def record(ctx: VenueContext, endpoint: str, liq: Liq, side_raw: str, push_ms: int, connections: int,
           sent_ns: int, extra: dict | None = None) -> dict:
    """One ground-truth line for a pushed liquidation."""
    qty, price = float(liq.qty), float(liq.price)
    rec = {
        "venue": ctx.venue.upper(), "kind": "liquidation", "endpoint": endpoint, "coin": liq.coin,
        "raw_symbol": liq.raw_symbol, "ts_ms": liq.ts_ms, "side_raw": side_raw, "side": liq.side,
        "qty": qty, "price": price, "value": qty * price, "push_ms": push_ms, "sent_ns": sent_ns,
        "connections": connections,
    }
    if extra:
        rec.update(extra)
    return rec


def _float_param(request: web.Request, name: str, default: float | None = None) -> float:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise web.HTTPBadRequest(text=f"missing parameter {name}")
        return default
    try:
        return float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"bad {name}: {raw!r}") from None


class LiquidationControls:
    """The `/_emulator/` control endpoints of one venue's liquidations: its engine (cascades, rate,
    counters) and its WebSocket hub (drop, silence). Also starts and stops the engine with the app."""

    def __init__(self, ctx: VenueContext, engine: LiquidationEngine, hub: WsHub) -> None:
        self.ctx, self.engine, self.hub = ctx, engine, hub

    def install(self, app: web.Application) -> None:
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        app.add_routes([
            web.post("/_emulator/cascade", self.cascade),
            web.post("/_emulator/drop", self.drop),
            web.post("/_emulator/silence", self.silence),
            web.post("/_emulator/liquidation_rate", self.rate),
            web.get("/_emulator/liquidations", self.status),
        ])

    async def on_startup(self, app: web.Application) -> None:
        """Start generating at the app's configured rate (`LIQUIDATION_RATE`, else the default)."""
        self.engine.rate = app.get(LIQUIDATION_RATE, DEFAULT_RATE)
        self.engine.start()

    async def on_shutdown(self, app: web.Application) -> None:
        """Stop generating and abort every socket, so shutdown does not wait on clients."""
        await self.engine.stop()
        self.hub.drop()

    async def cascade(self, request: web.Request) -> web.Response:
        """POST /_emulator/cascade?symbol=S&count=N&seconds=T[&side=LONG]: N liquidations of S over T
        seconds; symbol=all (or none) spreads them across every listed symbol."""
        symbol = request.query.get("symbol", "all")
        count = int(_float_param(request, "count", 1000))
        seconds = _float_param(request, "seconds", 3.0)
        side = request.query.get("side", "LONG").upper()
        if side not in ("LONG", "SHORT") or count < 0:
            raise web.HTTPBadRequest(text="side must be LONG or SHORT, count >= 0")
        try:
            c = self.engine.cascade("" if symbol == "all" else symbol, count, seconds, side)
        except KeyError:
            close = difflib.get_close_matches(symbol, list(self.engine.symbols), n=5)
            raise web.HTTPBadRequest(text=f"unknown symbol {symbol!r} ({len(self.engine.symbols)} listed; closest: "
                                          f"{', '.join(close) or 'none'}; or symbol=all)") from None
        logger.info("{} cascade: {} liquidations of {} in {} s ({})", self.ctx.venue, count, symbol, seconds, side)
        self.ctx.recorder.write([{"venue": self.ctx.venue.upper(), "kind": "cascade", "endpoint": request.path,
                                  "raw_symbol": symbol, "ts_ms": c.start_ms, "count": count, "seconds": seconds,
                                  "side": side, "symbols": len(self.engine.symbols) if symbol == "all" else 1}])
        return json_response({"symbol": symbol, "count": count, "seconds": seconds, "side": side, "start_ms": c.start_ms})

    async def drop(self, request: web.Request) -> web.Response:
        """POST /_emulator/drop[?refuse_seconds=N]: abort every socket, refuse new ones for N s."""
        n = self.hub.drop(_float_param(request, "refuse_seconds", 0.0))
        logger.info("{} dropped {} websocket(s)", self.ctx.venue, n)
        return json_response({"dropped": n, "drop_ns": time.time_ns()})

    async def silence(self, request: web.Request) -> web.Response:
        """POST /_emulator/silence?seconds=N: the open sockets get nothing (no pong either) for N s."""
        n = self.hub.silence(_float_param(request, "seconds", 30.0))
        logger.info("{} silenced {} websocket(s)", self.ctx.venue, n)
        return json_response({"silenced": n, "silence_ns": time.time_ns()})

    async def rate(self, request: web.Request) -> web.Response:
        """POST /_emulator/liquidation_rate?per_second=X: the base rate per symbol."""
        self.engine.rate = max(0.0, _float_param(request, "per_second"))
        return json_response({"per_second": self.engine.rate})

    async def status(self, request: web.Request) -> web.Response:
        """GET /_emulator/liquidations: generated, pushed, connections, rate, cascades pending."""
        engine, hub = self.engine, self.hub
        return json_response({"generated": engine.generated, "pushed": hub.pushed, "connections": len(hub.connections),
                              "rate": engine.rate, "cascades_pending": len(engine.cascades),
                              "symbols": len(engine.symbols)})


def register(app: web.Application, ctx: VenueContext, symbols: Callable[[], list[SymbolSpec]], hub: WsHub,
             on_tick: Callable[[list[Liq], int], None]) -> LiquidationEngine:
    """Create the venue's engine over its listed symbols (`symbols()`, re-read after a listing; its
    batches go to `on_tick`), start/stop it with the app, add the control endpoints."""
    engine = LiquidationEngine(ctx, symbols)
    engine.sink = on_tick
    app[ENGINE] = engine
    LiquidationControls(ctx, engine, hub).install(app)
    return engine
