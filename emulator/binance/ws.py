"""Owns Binance USDT-M's market WebSocket streams: liquidation orders (`forceOrder`), and how the
replay serves a recording of them.

Paths (ccxt.pro 4.5.90 rewrites the configured ``ws://host:port/ws`` to the routed
``/market/ws`` and appends a stream index, so it dials ``/market/ws/0``):

- ``/market/ws``, ``/market/ws/<stream>``, ``/ws``, ``/ws/<stream>``: raw streams (a valid stream
  name in the path is subscribed at connect; ``0`` is not a stream and is ignored);
- ``/market/stream?streams=a/b``, ``/stream?streams=a/b``: combined streams, every event wrapped
  as ``{"stream": "<name>", "data": {...}}``.

Requests, as on the venue: ``{"method": "SUBSCRIBE", "params": ["btcusdt@forceOrder"], "id": 1}``
-> ``{"result": null, "id": 1}``; ``UNSUBSCRIBE`` likewise; ``LIST_SUBSCRIPTIONS`` ->
``{"result": [...], "id": n}``; anything else -> ``{"error": {"code": 2, "msg": ...}, "id": n}``.
Streams: ``<symbol>@forceOrder`` and ``!forceOrder@arr`` (all symbols, same event shape).

The venue's sampling rule is reproduced: **only the latest liquidation per symbol per 1000 ms
is pushed** (aligned 1-second windows; a window without liquidations pushes nothing). The
server sends a ping frame every 180 s and answers the client's pings with pongs.

Event (samples/binanceusdm.json ws_forceOrder__*)::

    {"e": "forceOrder", "E": <push ms>, "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT",
     "f": "IOC", "q": "0.014", "p": "9910.00", "ap": "9910.12", "X": "FILLED", "l": "0.014",
     "z": "0.014", "T": <liquidation ms>}}

`S` is the forced order's side: SELL liquidates a LONG. `q` = `z` (FILLED), `l` is the size of
the last fill (smaller than `z` when the order took several fills), `ap` the average fill
price (the ground truth's `price`), `p` the order's limit price (a little worse than `ap`).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from emulator.binance.instruments import instruments
from emulator.common import VenueContext, decimals, fixed
from emulator.liquidations import Liq, SymbolSpec, record
from emulator.liquidations import register as register_engine
from emulator.universe import cached, universe_of
from emulator.venue import ReplayStreams
from emulator.websocket import Connection, WsHub

ALL_STREAM = "!forceOrder@arr"
ENDPOINT = "/market/ws"
PING_S = 180.0  # Binance pings every 3 minutes


def _stream_name(raw_symbol: str) -> str:
    return f"{raw_symbol.lower()}@forceOrder"


class ForceOrderStreams:
    """The forceOrder streams of one Binance app: its sockets, the liquidations of each symbol's
    open 1-second window, and the venue's stream requests."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.hub = WsHub(ctx)
        self.pending: dict[str, Liq] = {}  # raw_symbol -> latest liquidation of its open 1 s window
        self.decoder = msgspec.json.Decoder()

    def symbol_specs(self) -> list[SymbolSpec]:
        """The trading perpetuals, whose liquidations are streamed."""
        market = self.ctx.market
        universe = universe_of(market)
        return [SymbolSpec(i.symbol, i.coin, i.spec.tick, i.spec.step, universe.weight("binance", i.symbol))
                for i in instruments(market, self.ctx.now_ms()) if i.perpetual and i.servable]

    @property
    def by_stream(self) -> dict[str, SymbolSpec]:
        """Stream name -> its symbol (rebuilt after a listing)."""
        return cached(self.ctx.market, "binance.streams", None,
                      lambda: {_stream_name(s.raw_symbol): s for s in self.symbol_specs()})

    def install(self, app: web.Application) -> None:
        """The WebSocket routes, and the liquidation engine feeding `on_tick`."""
        register_engine(app, self.ctx, self.symbol_specs, self.hub, self.on_tick)
        for prefix in ("/market", ""):
            app.router.add_get(f"{prefix}/ws", self.raw_stream)
            app.router.add_get(f"{prefix}/ws/{{stream}}", self.raw_stream)
            app.router.add_get(f"{prefix}/stream", self.combined_stream)

    def valid(self, stream: str) -> bool:
        return stream == ALL_STREAM or stream in self.by_stream

    # -- pushing --------------------------------------------------------------------------

    def payload(self, liq: Liq, push_ms: int) -> tuple[dict, str, dict]:
        """(forceOrder event, its `S`, extra ground-truth fields) of one liquidation."""
        spec = self.by_stream[_stream_name(liq.raw_symbol)]
        side_raw = "SELL" if liq.side == "LONG" else "BUY"
        ap = float(liq.price)
        worse = 1 - 0.0008 if side_raw == "SELL" else 1 + 0.0008
        p = fixed(round(ap * worse / float(spec.tick)) * float(spec.tick), decimals(spec.tick))
        event = {"e": "forceOrder", "E": push_ms, "o": {
            "s": liq.raw_symbol, "S": side_raw, "o": "LIMIT", "f": "IOC", "q": liq.qty, "p": p, "ap": liq.price,
            "X": "FILLED", "l": liq.last_qty, "z": liq.qty, "T": liq.ts_ms}}
        extra = {"order_qty": float(liq.qty), "last_qty": float(liq.last_qty), "order_price": float(p)}
        return event, side_raw, extra

    def push(self, liq: Liq, push_ms: int) -> None:
        """Send one liquidation to the sockets subscribed to its symbol's stream or to all of them."""
        hub = self.hub
        event, side_raw, extra = self.payload(liq, push_ms)
        stream = _stream_name(liq.raw_symbol)
        raw = msgspec.json.encode(event).decode()
        sent = 0
        for conn in list(hub.connections):
            for topic in (stream, ALL_STREAM):
                if topic in conn.topics:
                    text = raw if not conn.combined else msgspec.json.encode({"stream": topic, "data": event}).decode()
                    sent += conn.push(text)
        hub.pushed += 1
        self.ctx.recorder.write([record(self.ctx, ENDPOINT, liq, side_raw, push_ms, sent, time.time_ns(), extra)])

    def on_tick(self, new: list[Liq], now_ms: int) -> None:
        """The engine's new liquidations: only the latest per symbol per 1 s window is pushed, once
        the window is over."""
        pending = self.pending
        for liq in new:  # sorted by time; all at or before now_ms
            prev = pending.get(liq.raw_symbol)
            if prev is not None and prev.ts_ms // 1000 < liq.ts_ms // 1000:
                self.push(prev, now_ms)
            pending[liq.raw_symbol] = liq  # the venue keeps only the latest of the window
        window = now_ms // 1000  # a window is pushed once it is over
        for sym in [s for s, q in pending.items() if q.ts_ms // 1000 < window]:
            self.push(pending.pop(sym), now_ms)

    # -- requests -------------------------------------------------------------------------

    def on_text(self, conn: Connection, text: str) -> None:
        """A client's request: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, or an error answer."""
        hub = self.hub
        try:
            req = self.decoder.decode(text)
        except msgspec.DecodeError:
            hub.send_json(conn, {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}})
            return
        rid = req.get("id") if isinstance(req, dict) else None
        method = req.get("method") if isinstance(req, dict) else None
        params = req.get("params") if isinstance(req, dict) else None
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) and self.valid(p) for p in params):
                hub.send_json(conn, {"error": {"code": 2, "msg": f"Invalid request: invalid stream name(s) {params!r}"}, "id": rid})
                return
            if method == "SUBSCRIBE":
                conn.topics.update(params)
            else:
                conn.topics.difference_update(params)
            hub.send_json(conn, {"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            hub.send_json(conn, {"result": sorted(conn.topics), "id": rid})
        else:
            hub.send_json(conn, {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": rid})

    async def raw_stream(self, request: web.Request) -> web.StreamResponse:
        """GET /market/ws[/<stream>], /ws[/<stream>]: raw events (a valid stream in the path is subscribed)."""
        name = request.match_info.get("stream", "")
        return await self._serve(request, [name] if self.valid(name) else [], combined=False)

    async def combined_stream(self, request: web.Request) -> web.StreamResponse:
        """GET /market/stream?streams=a/b, /stream?streams=a/b: events wrapped as {"stream", "data"}."""
        names = [n for n in request.query.get("streams", "").split("/") if self.valid(n)]
        return await self._serve(request, names, combined=True)

    async def _serve(self, request: web.Request, streams: list[str], combined: bool) -> web.StreamResponse:
        def setup(conn: Connection) -> None:
            conn.combined = combined
            conn.topics.update(streams)

        return await self.hub.serve(request, self.on_text, PING_S, on_open=setup)


# -- the stream as the replay serves it (emulator/replay.py) ----------------------------------


def frame_topic(message: Any) -> str:
    """The stream a recorded message belongs to (`btcusdt@forceOrder`)."""
    if not isinstance(message, dict):
        return ""
    if "stream" in message:  # a combined-stream envelope
        return str(message["stream"])
    return f"{str((message.get('o') or {}).get('s', '')).lower()}@forceOrder"


def path_topics(stream: str) -> set[str]:
    return {stream} if stream.endswith("@forceOrder") or stream == ALL_STREAM else set()


def receives(topic: str, topics: set[str]) -> bool:
    return topic in topics or ALL_STREAM in topics


def replay_answer(req: dict, topics: set[str], conn_id: str) -> dict:
    method, params, rid = req.get("method"), req.get("params") or [], req.get("id")
    if method == "SUBSCRIBE":
        topics.update(params)
    elif method == "UNSUBSCRIBE":
        topics.difference_update(params)
    return {"result": sorted(topics) if method == "LIST_SUBSCRIPTIONS" else None, "id": rid}


REPLAY = ReplayStreams(paths=("/market/ws", "/market/ws/{stream}", "/ws", "/ws/{stream}"), topic=frame_topic,
                       path_topics=path_topics, receives=receives, answer=replay_answer)
