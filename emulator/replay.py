"""Owns the replay of a recording (`venues/recording.py`) as the venue(s): ``python -m emulator --replay DIR``
(started by `emulator/server.py`'s `start_replay`; each venue's maintenance answer and liquidation
stream protocol come with it, `ReplayStreams` from `emulator/<venue>/ws.py`).

DIR holds `<venue>.jsonl` files (a run's `run/recordings/`, or the run directory itself). Each
recorded venue gets its own port, like the live emulator, and answers from its tape:

- A request is matched on what identifies it: the operation the client names in `X-Derivs-Op`
  (sandbox clients send it: Bybit's tickers serve both the open-interest and the funding poll,
  so the path alone cannot tell which answer comes next), the method, the path, the query and
  the JSON body (Hyperliquid's info `type`), without the values that change on every request
  (`timestamp`, `nonce`, signatures: secrets are redacted in the recording anyway). The host is
  ignored, so a recording of the real venues replays here too.
- Each such request gets the **next** recorded answer of its kind, in recorded order: the
  recorded status, the body exactly as received, the recorded headers (content type, rate-limit
  headers, `Retry-After`), plus `X-Derivs-Recorded-Ns` = when the answer arrived. Sandbox clients
  take that header as the answer's receive time, so rows timed at receipt (Hyperliquid's, whose
  payloads carry no time) get their recorded time back. The client's own poll schedule does not
  matter: the n-th open-interest poll gets the n-th recorded answer whenever it asks.
- A client that sends no `X-Derivs-Op` (the `derivs` CLI) gets, among the recordings of the
  same request, the earliest one not served yet.
- **When a tape runs out** (decision): data answers (any labelled operation: `open_interest`,
  `funding`, ...) end with the venue's **maintenance answer** (HTTP 503; Binance `-1001`, Bybit
  `retCode` 10016, as `POST /_emulator/fault?mode=maintenance` renders them), so a replay never
  invents a row: the collector logs the failure and backs off, exactly as during a real
  maintenance window, and the catalog holds what the recording held. Metadata (unlabelled
  requests: `exchangeInfo`, `instruments-info`, `meta`; a restarted collector reloads its
  markets) repeats its last recorded answer, as a venue whose listings did not change would.
  A request that was never recorded also gets the maintenance answer (and a WARNING).
- Transport failures (timeouts, refused connections) reach no recording, so they are not
  replayed; everything the venue answered, errors and rate-limit answers included, is.
- Recorded liquidation WebSocket messages (`"kind": "ws"`) are pushed, in order, to the
  connections subscribed to their stream on the venue's WebSocket paths (`WsReplay`).

Controls: `GET /_emulator/replay` (per request kind: recorded, served, left; answers given after
the end; unmatched requests), `GET /_emulator/ratelimit` (limits off: only recorded answers are
given, recorded 429s included). With `--ground-truth`, one JSON line per answer:
``{"venue", "kind": "replay", "op", "endpoint", "status", "answer": "recorded"|"repeat"|
"maintenance"|"unmatched", "recorded_ns", "line", "served_ns"}`` (`line`: 1-based line of the
recording; null for a maintenance answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
from aiohttp import WSMsgType, web
from loguru import logger

from venues.recording import SECRET_KEYS, redact_body
from emulator.common import json_response
from emulator.ground_truth import GroundTruth
from emulator.venue import ReplayStreams

OP_HEADER = "X-Derivs-Op"
RECORDED_HEADER = "X-Derivs-Recorded-Ns"
# Request fields that differ between two otherwise identical requests (left out of the match).
VOLATILE = {"timestamp", "recvwindow", "nonce", "time", "expiresafter", "signature", "sign"} | SECRET_KEYS
_ENCODER = msgspec.json.Encoder(order="sorted")

Key = tuple[str, str, str, str, str]  # (op, method, path, query, body)


def request_key(op: str, method: str, url: str, body: Any) -> Key:
    """What identifies a request for the replay; the same for the recorded and the live one."""
    parts = urlsplit(url)
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in VOLATILE)
    text = redact_body(body) if body else None
    if text:
        try:
            data = msgspec.json.decode(text)
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if str(k).lower() not in VOLATILE}
            text = _ENCODER.encode(data).decode()
        except msgspec.DecodeError:
            text = "&".join(sorted(p for p in text.split("&") if p.split("=", 1)[0].lower() not in VOLATILE))
    return (op or "", method.upper(), parts.path, "&".join(f"{k}={v}" for k, v in query), text or "")


def recording_dir(path: str | os.PathLike) -> Path:
    """DIR itself when it holds `<venue>.jsonl` files, else DIR/recordings (a run directory)."""
    base = Path(path)
    if not any(base.glob("*.jsonl")) and (base / "recordings").is_dir():
        base = base / "recordings"
    if not any(base.glob("*.jsonl")):
        raise FileNotFoundError(f"{path}: no recording (<venue>.jsonl) here or in {Path(path) / 'recordings'}")
    return base


@dataclass
class Track:
    """The recorded answers of one kind of request, in order."""

    answers: deque = field(default_factory=deque)  # (line number, record)
    recorded: int = 0
    served: int = 0
    after_end: int = 0  # requests answered once the track was used up
    last: tuple[int, dict] | None = None


class Tape:
    """One venue's recording, split into tracks by request kind."""

    def __init__(self, venue: str, records: Iterable[dict]):
        self.venue = venue
        self.tracks: dict[Key, Track] = {}
        self.unmatched = 0
        self.frames: deque = deque()  # (line number, record) of WebSocket liquidation messages, in order
        self.frames_recorded = self.frames_pushed = self.frames_doubled = 0
        seen: dict[bytes, int] = {}  # message -> recorded ns: a rotation's overlap recorded it twice
        for line, r in enumerate(records, 1):
            if r.get("kind") == "ws":
                self.frames_recorded += 1
                encoded = _ENCODER.encode(r["message"])
                if r["ts_ns"] - seen.get(encoded, -DOUBLE_WITHIN_NS - 1) <= DOUBLE_WITHIN_NS:
                    self.frames_doubled += 1
                    continue
                seen[encoded] = r["ts_ns"]
                self.frames.append((line, r))
                continue
            key = request_key(r.get("op", ""), r.get("method", "GET"), r["url"], r.get("request_body"))
            track = self.tracks.setdefault(key, Track())
            track.answers.append((line, r))
            track.recorded += 1

    def next(self, key: Key) -> tuple[Key | None, Track | None]:
        """The track that answers this request: its own, or (no op named, or one the recording
        does not know) the same request's track whose next answer was recorded first."""
        if key in self.tracks:
            return key, self.tracks[key]
        same = [(k, t) for k, t in self.tracks.items() if k[1:] == key[1:]]
        if not same:
            return None, None
        waiting = [(k, t) for k, t in same if t.answers]
        pool = waiting or same
        return min(pool, key=lambda kt: (kt[1].answers or [kt[1].last])[0][1]["ts_ns"])

    def state(self) -> dict:
        tracks = [{"op": k[0], "method": k[1], "path": k[2], "query": k[3], "body": k[4], "recorded": t.recorded,
                   "served": t.served, "left": len(t.answers), "after_end": t.after_end}
                  for k, t in self.tracks.items()]
        data = [t for t in tracks if t["op"]]
        return {"venue": self.venue, "tracks": tracks, "unmatched": self.unmatched,
                "data_left": sum(t["left"] for t in data), "data_after_end": sum(t["after_end"] for t in data),
                "done": all(t["left"] == 0 for t in data),
                "ws": {"recorded": self.frames_recorded, "doubled": self.frames_doubled, "pushed": self.frames_pushed,
                       "left": len(self.frames)}}


class ReplayAnswers:
    """The REST side of one venue's replay: each request gets the next recorded answer of its kind."""

    def __init__(self, venue: str, tape: Tape, truth: GroundTruth, maintenance: Callable[[], web.Response]) -> None:
        self.venue, self.tape, self.truth, self.maintenance = venue, tape, truth, maintenance

    def record(self, key: Key, status: int, answer: str, line: int | None, recorded_ns: int | None) -> None:
        """One ground-truth line per answer given."""
        self.truth.write([{"venue": self.venue.upper(), "kind": "replay", "op": key[0],
                           "endpoint": key[2] + (f" {key[4]}" if key[4] else ""), "query": key[3], "status": status,
                           "answer": answer, "recorded_ns": recorded_ns, "line": line, "served_ns": time.time_ns()}])

    async def answer(self, request: web.Request) -> web.StreamResponse:
        """Any venue request: the next recorded answer of its kind; past the end, the venue's
        maintenance answer (data) or the last answer again (metadata)."""
        tape, venue = self.tape, self.venue
        op = request.headers.get(OP_HEADER, "")
        body = await request.read()
        key = request_key(op, request.method, request.path_qs, body or None)
        found, track = tape.next(key)
        if track is None:
            tape.unmatched += 1
            logger.warning("{} replay: no recording of {} {} {} (op {!r}): maintenance answer", venue, request.method,
                           request.path_qs, key[4], op)
            self.record(key, 503, "unmatched", None, None)
            return self.maintenance()
        if track.answers:
            line, r = track.answers.popleft()
            track.served += 1
            track.last = (line, r)
            kind = "recorded"
        else:
            track.after_end += 1
            if found[0] or track.last is None:  # data: the recording is over, like a venue in maintenance
                self.record(found, 503, "maintenance", None, None)
                return self.maintenance()
            line, r = track.last  # metadata: the listing did not change
            kind = "repeat"
        self.record(found, r["status"], kind, line, r["ts_ns"])
        headers = {k: v for k, v in (r.get("headers") or {}).items() if k.lower() not in ("content-length", "content-encoding")}
        headers[RECORDED_HEADER] = str(r["ts_ns"])
        return web.Response(status=r["status"], body=(r.get("body") or "").encode(), headers=headers)

    async def status(self, request: web.Request) -> web.Response:
        """GET /_emulator/replay: per request kind recorded, served, left; answers after the end."""
        return json_response(self.tape.state())

    async def ratelimit(self, request: web.Request) -> web.Response:
        """GET /_emulator/ratelimit, read by sandbox clients (venues/budget.py): the replay enforces nothing."""
        return json_response({"venue": self.venue, "enabled": False, "scale": 1.0, "replay": True})


def create_app(venue: str, tape: Tape, truth: GroundTruth, maintenance: Callable[[], web.Response],
               streams: ReplayStreams | None) -> web.Application:
    """The replay application of one venue (its liquidation stream too if `streams` is given)."""
    answers = ReplayAnswers(venue, tape, truth, maintenance)
    app = web.Application()
    app.add_routes([web.get("/_emulator/replay", answers.status), web.get("/_emulator/ratelimit", answers.ratelimit)])
    if streams is not None:
        replay = WsReplay(venue, tape, truth, streams)
        for path in streams.paths:
            app.router.add_get(path, replay.serve)
        app.on_cleanup.append(replay.close)
    app.router.add_route("*", "/{tail:.*}", answers.answer)
    return app


# -- liquidation WebSocket streams -------------------------------------------------------------

DOUBLE_WITHIN_NS = 5_000_000_000


class WsReplay:
    """Pushes a venue's recorded liquidation messages, in recorded order, to the connections
    subscribed to their stream (answering subscriptions and pings like the venue). One cursor for
    the venue: a reconnecting client gets the messages not pushed yet, not the tape again. A
    message of a stream nobody subscribes to waits for a subscriber (the order is kept)."""

    def __init__(self, venue: str, tape: Tape, truth: GroundTruth, streams: ReplayStreams):
        self.venue, self.tape, self.truth, self.streams = venue, tape, truth, streams
        self.conns: dict[web.WebSocketResponse, set[str]] = {}
        self.wake = asyncio.Event()
        self.pusher: asyncio.Task | None = None

    async def close(self, app: web.Application) -> None:
        if self.pusher is not None:
            self.pusher.cancel()
        for ws in list(self.conns):
            await ws.close()

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        stream = request.match_info.get("stream", "")
        self.conns[ws] = self.streams.path_topics(stream)
        if self.pusher is None:
            self.pusher = asyncio.get_running_loop().create_task(self._push())
        self.wake.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._request(ws, msg.data)
        finally:
            self.conns.pop(ws, None)
        return ws

    async def _request(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            req = None
        if not isinstance(req, dict):
            return
        topics = self.conns.setdefault(ws, set())
        reply = self.streams.answer(req, topics, f"replay-{id(ws):x}")
        await ws.send_str(_ENCODER.encode(reply).decode())
        self.wake.set()

    async def _push(self) -> None:
        frames = self.tape.frames
        while frames:
            line, r = frames[0]
            topic = self.streams.topic(r["message"])
            targets = [ws for ws, topics in self.conns.items() if not ws.closed and self.streams.receives(topic, topics)]
            if not targets:
                self.wake.clear()
                await self.wake.wait()
                continue
            text = _ENCODER.encode(r["message"]).decode()
            for ws in targets:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(text)
            frames.popleft()
            self.tape.frames_pushed += 1
            self.truth.write([{"venue": self.venue.upper(), "kind": "replay", "op": r.get("op", "liquidations"),
                               "endpoint": "ws " + topic, "query": "", "status": 101, "answer": "recorded",
                               "recorded_ns": r["ts_ns"], "line": line, "served_ns": time.time_ns()}])
            await asyncio.sleep(0)


@dataclass
class Replay:
    """A running replay: base URL per venue; close() stops every listener."""

    urls: dict[str, str]
    tapes: dict[str, Tape]
    truth: GroundTruth
    _runners: list[web.AppRunner] = field(default_factory=list, repr=False)

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        self.truth.close()
