"""Bybit v5 public linear WebSocket (``/v5/public/linear``): the ``allLiquidation.<SYMBOL>`` topic.

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

from emulator import bybit
from emulator.common import VenueContext
from emulator.liquidations import Liq, SymbolSpec, record
from emulator.venue import ReplayStreams
from emulator.websocket import Connection, WsHub
from emulator.liquidations import register as register_engine

ENDPOINT = "/v5/public/linear"
BATCH_MS = 500
TOPIC = "allLiquidation."


def register(app: web.Application, ctx: VenueContext) -> None:
    """Add the public linear WebSocket route and the liquidation engine to the Bybit app."""
    now = ctx.now_ms()
    specs = [SymbolSpec(i.symbol, i.coin, i.spec.tick, i.spec.qty_step) for i in bybit.instruments(now) if i.perpetual]
    topics = {TOPIC + s.raw_symbol for s in specs}
    hub = WsHub(ctx)
    buffer: dict[str, list[Liq]] = {}  # raw_symbol -> liquidations of the open 500 ms window
    opened_window = {"w": now // BATCH_MS}
    decoder = msgspec.json.Decoder()

    def flush(push_ms: int) -> None:
        for sym, liqs in list(buffer.items()):
            if not liqs:
                continue
            topic = TOPIC + sym
            data = [{"T": q.ts_ms, "s": q.raw_symbol, "S": "Buy" if q.side == "LONG" else "Sell", "v": q.qty, "p": q.price}
                    for q in liqs]
            text = msgspec.json.encode({"topic": topic, "type": "snapshot", "ts": push_ms, "data": data}).decode()
            sent = hub.broadcast(topic, text)
            hub.pushed += len(liqs)
            sent_ns = time.time_ns()
            ctx.recorder.write([record(ctx, ENDPOINT, q, d["S"], push_ms, sent, sent_ns) for q, d in zip(liqs, data)])
        buffer.clear()

    def on_tick(new: list[Liq], now_ms: int) -> None:
        window = now_ms // BATCH_MS
        if window > opened_window["w"]:
            flush(now_ms)
            opened_window["w"] = window
        for liq in new:
            buffer.setdefault(liq.raw_symbol, []).append(liq)

    register_engine(app, ctx, specs, hub, on_tick)

    def reply(conn: Connection, req: dict, success: bool, ret_msg: str = "") -> None:
        hub.send_json(conn, {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id,
                             "req_id": req.get("req_id", ""), "op": req.get("op")})

    def on_text(conn: Connection, text: str) -> None:
        try:
            req = decoder.decode(text)
        except msgspec.DecodeError:
            req = None
        if not isinstance(req, dict):
            hub.send_json(conn, {"success": False, "ret_msg": "error:request not json", "conn_id": conn.conn_id, "op": ""})
            return
        op, args = req.get("op"), req.get("args") or []
        if op == "ping":
            reply(conn, req, True, "pong")
        elif op in ("subscribe", "unsubscribe"):
            bad = [a for a in args if a not in topics] if isinstance(args, list) else [str(args)]
            if bad or not isinstance(args, list) or not args:
                reply(conn, req, False, f"error:handler not found,topic:{','.join(map(str, bad or args))}")
                return
            if op == "subscribe":
                already = [a for a in args if a in conn.topics]
                if already:
                    reply(conn, req, False, f"error:already subscribed,topic:{','.join(already)}")
                    return
                conn.topics.update(args)
            else:
                conn.topics.difference_update(args)
            reply(conn, req, True)
        else:
            reply(conn, req, False, f"error:invalid op {op!r}")

    async def public_linear(request: web.Request) -> web.StreamResponse:
        return await hub.serve(request, on_text)

    app.router.add_get(ENDPOINT, public_linear)


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
