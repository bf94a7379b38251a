"""Liquidations of the emulated venues: a seeded generator, cascades on demand, and the
WebSocket plumbing (connections, faults, control endpoints) shared by `ws_binance` and `ws_bybit`.

The model
---------
Every venue app that streams liquidations owns one `LiquidationEngine`. A background task ticks
every `TICK_MS` and, for each listed perpetual, draws

- base liquidations: a Poisson process at `rate` per symbol per second (default
  `DEFAULT_RATE`, set with ``start_emulator(liquidation_rate=...)``, ``python -m emulator
  --liquidation-rate``, or ``POST /_emulator/liquidation_rate?per_second=X``), sides 50/50;
- cascades: ``POST /_emulator/cascade?symbol=BTCUSDT&count=5000&seconds=3[&side=LONG]``
  spreads `count` liquidations over `seconds` (90 % on `side`, default LONG: a falling market
  liquidates longs).

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
import contextlib
import math
import random
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import WSMsgType, web
from loguru import logger

from emulator.common import VenueContext, decimals, fixed, json_response

TICK_MS = 10
DEFAULT_RATE = 0.2  # base liquidations per symbol per second
DEFAULT_PING_S = 180.0  # Binance pings every 3 minutes
CASCADE_SIDE_SHARE = 0.9

LIQUIDATION_RATE = web.AppKey("liquidation_rate", float)
ENGINE = web.AppKey("liquidation_engine", object)

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    raw_symbol: str
    coin: str
    tick: str
    step: str


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
    raw_symbol: str
    count: int
    seconds: float
    side: str
    start_ms: int
    emitted: int = 0


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


class LiquidationEngine:
    """Generates liquidations for one venue and hands each tick's batch to the venue's hub."""

    def __init__(self, ctx: VenueContext, symbols: list[SymbolSpec], rate: float = DEFAULT_RATE) -> None:
        self.ctx = ctx
        self.symbols = {s.raw_symbol: s for s in symbols}
        self.rate = rate
        self.rng = random.Random((ctx.market.seed << 8) ^ zlib.crc32(f"liquidations|{ctx.venue}".encode()))
        self.cascades: list[_Cascade] = []
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

    # -- control -----------------------------------------------------------------------------

    def cascade(self, raw_symbol: str, count: int, seconds: float, side: str = "LONG") -> _Cascade:
        if raw_symbol not in self.symbols:
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
        if dt_ms and self.rate > 0:
            for spec in self.symbols.values():
                for _ in range(self._poisson(self.rate * dt_ms / 1000)):
                    side = "LONG" if self.rng.random() < 0.5 else "SHORT"
                    out.append(self._draw(spec, self._ts_in(last, now_ms), side))
        for c in list(self.cascades):
            elapsed = (now_ms - c.start_ms) / 1000
            due = min(c.count, math.floor(c.count * min(1.0, elapsed / c.seconds))) - c.emitted
            spec = self.symbols[c.raw_symbol]
            for _ in range(due):
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


def register(app: web.Application, ctx: VenueContext, symbols: list[SymbolSpec], hub: WsHub,
             on_tick: Callable[[list[Liq], int], None]) -> LiquidationEngine:
    """Create the venue's engine, start/stop it with the app, add the control endpoints."""
    engine = LiquidationEngine(ctx, symbols)
    engine.sink = on_tick
    app[ENGINE] = engine

    async def on_startup(app: web.Application) -> None:
        engine.rate = app.get(LIQUIDATION_RATE, DEFAULT_RATE)
        engine.start()

    async def on_shutdown(app: web.Application) -> None:
        await engine.stop()
        hub.drop()

    async def cascade(request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        count = int(_float_param(request, "count", 1000))
        seconds = _float_param(request, "seconds", 3.0)
        side = request.query.get("side", "LONG").upper()
        if side not in ("LONG", "SHORT") or count < 0:
            raise web.HTTPBadRequest(text="side must be LONG or SHORT, count >= 0")
        try:
            c = engine.cascade(symbol, count, seconds, side)
        except KeyError:
            raise web.HTTPBadRequest(text=f"unknown symbol {symbol!r}; listed: {sorted(engine.symbols)}") from None
        logger.info("{} cascade: {} liquidations of {} in {} s ({})", ctx.venue, count, symbol, seconds, side)
        return json_response({"symbol": symbol, "count": count, "seconds": seconds, "side": side, "start_ms": c.start_ms})

    async def drop(request: web.Request) -> web.Response:
        n = hub.drop(_float_param(request, "refuse_seconds", 0.0))
        logger.info("{} dropped {} websocket(s)", ctx.venue, n)
        return json_response({"dropped": n, "drop_ns": time.time_ns()})

    async def silence(request: web.Request) -> web.Response:
        n = hub.silence(_float_param(request, "seconds", 30.0))
        logger.info("{} silenced {} websocket(s)", ctx.venue, n)
        return json_response({"silenced": n, "silence_ns": time.time_ns()})

    async def rate(request: web.Request) -> web.Response:
        engine.rate = max(0.0, _float_param(request, "per_second"))
        return json_response({"per_second": engine.rate})

    async def status(request: web.Request) -> web.Response:
        return json_response({"generated": engine.generated, "pushed": hub.pushed, "connections": len(hub.connections),
                              "rate": engine.rate, "cascades_pending": len(engine.cascades)})

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.add_routes([
        web.post("/_emulator/cascade", cascade),
        web.post("/_emulator/drop", drop),
        web.post("/_emulator/silence", silence),
        web.post("/_emulator/liquidation_rate", rate),
        web.get("/_emulator/liquidations", status),
    ])
    return engine
