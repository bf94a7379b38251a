"""Owns Bybit v5's public linear WebSocket (``/v5/public/linear``): the ``allLiquidation.<SYMBOL>``
topic, and how the replay serves a recording of it.

Protocol, as on the venue (https://bybit-exchange.github.io/docs/v5/ws/connect and
.../websocket/public/all-liquidation; samples/bybit.json):

- ``{"op": "subscribe", "req_id": "1", "args": ["allLiquidation.BTCUSDT"]}`` ->
  ``{"success": true, "ret_msg": "", "conn_id": "...", "req_id": "1", "op": "subscribe"}``;
  an unknown topic -> ``"success": false, "ret_msg": "error:handler not found,topic:..."``;
  ``unsubscribe`` likewise.
- ``{"op": "ping", "req_id": "7"}`` -> ``{"success": true, "ret_msg": "pong", "conn_id": "...",
  "req_id": "7", "op": "ping"}`` (ccxt.pro sends one every 18 s).
- Pushes: every 500 ms, one message per subscribed symbol with **every** liquidation of the
  window (nothing is sampled away)::

    {"topic": "allLiquidation.BTCUSDT", "type": "snapshot", "ts": <push ms>,
     "data": [{"T": <liquidation ms>, "s": "BTCUSDT", "S": "Buy", "v": "0.015", "p": "96250.5"}]}

  `S` is the liquidated *position's* side (Buy = a LONG was liquidated), `v` the executed size,
  `p` the bankruptcy price.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from emulator.bybit.instruments import instruments
from emulator.common import VenueContext
from emulator.liquidations import Liq, SymbolSpec, record
from emulator.liquidations import register as register_engine
from emulator.universe import cached, universe_of
from emulator.venue import ReplayStreams
from emulator.websocket import Connection, WsHub

ENDPOINT = "/v5/public/linear"
BATCH_MS = 500
TOPIC = "allLiquidation."


class AllLiquidationStream:
    """The allLiquidation topics of one Bybit app: its sockets, the liquidations of the open 500 ms
    window, and the venue's subscribe/ping requests."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        now = ctx.now_ms()
        self.hub = WsHub(ctx)
        self.buffer: dict[str, list[Liq]] = {}  # raw_symbol -> liquidations of the open 500 ms window
        self.window = now // BATCH_MS
        self.decoder = msgspec.json.Decoder()

    def symbol_specs(self) -> list[SymbolSpec]:
        """The perpetuals, whose liquidations are streamed."""
        market = self.ctx.market
        universe = universe_of(market)
        return [SymbolSpec(i.symbol, i.coin, i.spec.tick, i.spec.qty_step, universe.weight("bybit", i.symbol))
                for i in instruments(market, self.ctx.now_ms()) if i.perpetual]

    @property
    def topics(self) -> set[str]:
        """The allLiquidation topics one may subscribe to (rebuilt after a listing)."""
        return cached(self.ctx.market, "bybit.topics", None, lambda: {TOPIC + s.raw_symbol for s in self.symbol_specs()})

    def install(self, app: web.Application) -> None:
        """The WebSocket route, and the liquidation engine feeding `on_tick`."""
        register_engine(app, self.ctx, self.symbol_specs, self.hub, self.on_tick)
        app.router.add_get(ENDPOINT, self.public_linear)

    # -- pushing --------------------------------------------------------------------------

    def flush(self, push_ms: int) -> None:
        """Push the closed window: one message per symbol with every liquidation of it."""
        hub = self.hub
        for sym, liqs in list(self.buffer.items()):
            if not liqs:
                continue
            topic = TOPIC + sym
            data = [{"T": q.ts_ms, "s": q.raw_symbol, "S": "Buy" if q.side == "LONG" else "Sell", "v": q.qty, "p": q.price}
                    for q in liqs]
            text = msgspec.json.encode({"topic": topic, "type": "snapshot", "ts": push_ms, "data": data}).decode()
            sent = hub.broadcast(topic, text)
            hub.pushed += len(liqs)
            sent_ns = time.time_ns()
            self.ctx.recorder.write([record(self.ctx, ENDPOINT, q, d["S"], push_ms, sent, sent_ns)
                                     for q, d in zip(liqs, data)])
        self.buffer.clear()

    def on_tick(self, new: list[Liq], now_ms: int) -> None:
        """The engine's new liquidations join the open window; a window is pushed once it is over."""
        window = now_ms // BATCH_MS
        if window > self.window:
            self.flush(now_ms)
            self.window = window
        for liq in new:
            self.buffer.setdefault(liq.raw_symbol, []).append(liq)

    # -- requests -------------------------------------------------------------------------

    def reply(self, conn: Connection, req: dict, success: bool, ret_msg: str = "") -> None:
        self.hub.send_json(conn, {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id,
                                  "req_id": req.get("req_id", ""), "op": req.get("op")})

    def on_text(self, conn: Connection, text: str) -> None:
        """A client's request: ping, subscribe, unsubscribe, or an error answer."""
        try:
            req = self.decoder.decode(text)
        except msgspec.DecodeError:
            req = None
        if not isinstance(req, dict):
            self.hub.send_json(conn, {"success": False, "ret_msg": "error:request not json", "conn_id": conn.conn_id,
                                      "op": ""})
            return
        op, args = req.get("op"), req.get("args") or []
        if op == "ping":
            self.reply(conn, req, True, "pong")
        elif op in ("subscribe", "unsubscribe"):
            bad = [a for a in args if a not in self.topics] if isinstance(args, list) else [str(args)]
            if bad or not isinstance(args, list) or not args:
                self.reply(conn, req, False, f"error:handler not found,topic:{','.join(map(str, bad or args))}")
                return
            if op == "subscribe":
                already = [a for a in args if a in conn.topics]
                if already:
                    self.reply(conn, req, False, f"error:already subscribed,topic:{','.join(already)}")
                    return
                conn.topics.update(args)
            else:
                conn.topics.difference_update(args)
            self.reply(conn, req, True)
        else:
            self.reply(conn, req, False, f"error:invalid op {op!r}")

    async def public_linear(self, request: web.Request) -> web.StreamResponse:
        """GET /v5/public/linear: one WebSocket until it closes."""
        return await self.hub.serve(request, self.on_text)


# -- the stream as the replay serves it (emulator/replay.py) ----------------------------------


def frame_topic(message: Any) -> str:
    """The stream a recorded message belongs to (`allLiquidation.BTCUSDT`)."""
    return str(message.get("topic", "")) if isinstance(message, dict) else ""


def path_topics(stream: str) -> set[str]:
    return set()  # subscriptions are requests, never in the path


def receives(topic: str, topics: set[str]) -> bool:
    return topic in topics


def replay_answer(req: dict, topics: set[str], conn_id: str) -> dict:
    op, args = req.get("op"), req.get("args") or []
    if op == "subscribe":
        topics.update(args)
    elif op == "unsubscribe":
        topics.difference_update(args)
    return {"success": True, "ret_msg": "pong" if op == "ping" else "", "conn_id": conn_id,
            "req_id": req.get("req_id", ""), "op": op}


REPLAY = ReplayStreams(paths=(ENDPOINT,), topic=frame_topic, path_topics=path_topics, receives=receives,
                       answer=replay_answer)
