"""Venue faults on demand: maintenance, timeouts, dropped connections, malformed payloads and
delisted symbols. Installed on every venue app by `emulator/server.py` (outermost middleware).

Controls (every venue):
- `POST /_emulator/fault?mode=M[&seconds=S][&count=N][&kind=K][&symbol=SYM][&delay=D]`, M one of
  - `maintenance`: Binance HTTP 503 `{"code":-1001,...}`, Bybit HTTP 503 `{"retCode":10016,...}`,
    Hyperliquid HTTP 503 (the emulator's rendering of a maintenance window);
  - `timeout`: answer only after `delay` seconds (default 15, beyond ccxt's 10 s timeout);
  - `refuse`: drop the connection without an answer (the client sees a reset connection);
  - `malformed`: corrupt the data answers (`kind`, see `MUTATIONS`) for `symbol` (a venue id:
    BTCUSDT / BTC; default every row of the answer), of `endpoint` only if given;
  - `none`: back to normal.
  The fault lasts `seconds` (default: until changed) or `count` answers, whichever ends first.
- `POST /_emulator/delist?symbol=SYM[&relist=1]`: the venue stops listing SYM (Binance, Bybit):
  gone from its instrument lists and ticker lists, per-symbol calls answer "invalid symbol".
- `GET /_emulator/faults`: the current fault, delisted symbols, and counters.

Every corrupted or withheld row is written to the ground truth as `{"kind": "fault", ...}` with the
venue symbol and its timestamp, so tests know exactly which served values are not data.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web
from loguru import logger

from emulator.common import json_response
from emulator.ground_truth import GroundTruth

MODES = ("none", "maintenance", "timeout", "refuse", "malformed")
# kind -> what happens to the targeted field of a row
MUTATIONS = ("missing", "type", "nan", "negative", "future", "past", "nonjson")
_DAY_MS = 86_400_000

# (venue, endpoint) -> (where the rows are, symbol key, value field, time field or None)
# Rows: "self" = the answer is one row, "list" = a list of rows, "bybit" = result.list, "hl" = [meta, ctxs]
DATA_ENDPOINTS: dict[tuple[str, str], tuple[str, str, str, str | None]] = {
    ("binance", "/fapi/v1/openInterest"): ("self", "symbol", "openInterest", "time"),
    ("binance", "/fapi/v1/premiumIndex"): ("auto", "symbol", "markPrice", "time"),
    # the one-side figure the collector stores (a missing one falls back to openInterest / 2, as in
    # payloads from before 2026-06-11: not malformed)
    ("bybit", "/v5/market/tickers"): ("bybit", "symbol", "singleOpenInterest", None),
    ("hyperliquid", "metaAndAssetCtxs"): ("hl", "name", "openInterest", None),
}


@dataclass
class Fault:
    mode: str = "none"
    until: float = float("inf")
    left: int | None = None  # answers left, None = unlimited
    kind: str = "missing"
    symbol: str = ""
    endpoint: str = ""  # malformed: only this endpoint (a path, or Hyperliquid's info type)
    delay_s: float = 15.0
    delisted: set[str] = field(default_factory=set)
    counts: Counter = field(default_factory=Counter)

    def active(self) -> bool:
        if self.mode == "none":
            return False
        if time.monotonic() >= self.until or self.left == 0:
            logger.info("fault {} over", self.mode)
            self.mode = "none"
            return False
        return True

    def spend(self) -> None:
        if self.left is not None:
            self.left -= 1


def _endpoint(request: web.Request, body: bytes) -> str:
    if request.path == "/info":
        try:
            return str(msgspec.json.decode(body).get("type"))
        except (msgspec.DecodeError, AttributeError):
            return "info"
    return request.path


def _mutate(row: dict, kind: str, value_field: str, time_field: str | None) -> str:
    """Corrupt one row in place; returns what was done."""
    if kind in ("future", "past"):
        if time_field is None or time_field not in row:
            kind = "missing"  # no timestamp in this payload: corrupt the value instead
        else:
            row[time_field] = int(row[time_field]) + 10 * _DAY_MS if kind == "future" else 1000
            return f"{time_field} {kind}"
    if kind == "missing":
        row.pop(value_field, None)
    elif kind == "type":
        row[value_field] = {"unexpected": [1, 2]}
    elif kind == "nan":
        row[value_field] = "NaN"
    elif kind == "negative":
        row[value_field] = "-" + str(row.get(value_field, "1")).lstrip("-")
    return f"{value_field} {kind}"


def _rows(data: Any, where: str) -> list[dict]:
    if where == "self" or (where == "auto" and isinstance(data, dict)):
        return [data]
    if where in ("list", "auto") and isinstance(data, list):
        return data
    if where == "bybit" and isinstance(data, dict):
        return (data.get("result") or {}).get("list") or []
    if where == "hl" and isinstance(data, list) and len(data) == 2:
        # ctxs carry no name: give each its coin for matching, removed again before sending
        for meta, ctx in zip(data[0]["universe"], data[1], strict=False):
            ctx["name"] = meta["name"]
        return data[1]
    return []


def maintenance(venue: str) -> web.Response:
    """The venue's answer during a maintenance window (also the replay's answer past a tape's end)."""
    if venue == "binance":
        return json_response({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
                             status=503)
    if venue == "bybit":
        return json_response({"retCode": 10016, "retMsg": "System maintenance, please try again later.", "result": {},
                              "retExtInfo": {}, "time": int(time.time() * 1000)}, status=503)
    return web.Response(status=503, text="Service Unavailable: scheduled maintenance")


def install(app: web.Application, venue: str, recorder: GroundTruth) -> Fault:
    """Add the fault middleware and its control routes to a venue app (before it starts)."""
    fault = Fault()

    def record(endpoint: str, what: str, rows: list[dict], symbol_key: str, time_field: str | None, envelope_ms: Any,
               op: str = "") -> None:
        recorder.write([{
            "venue": venue.upper(), "kind": "fault", "fault": what, "endpoint": endpoint, "op": op,
            "raw_symbol": r.get(symbol_key), "ts_ms": r.get(time_field) if time_field else envelope_ms,
            "served_ns": time.time_ns(),
        } for r in rows])

    def delist(endpoint: str, data: Any) -> Any:
        """Remove delisted symbols from listings and ticker lists."""
        if venue == "binance" and endpoint == "/fapi/v1/exchangeInfo":
            data["symbols"] = [s for s in data["symbols"] if s["symbol"] not in fault.delisted]
        elif venue == "binance" and endpoint in ("/fapi/v1/premiumIndex", "/fapi/v1/fundingInfo") and isinstance(data, list):
            data = [r for r in data if r.get("symbol") not in fault.delisted]
        elif venue == "bybit" and endpoint in ("/v5/market/instruments-info", "/v5/market/tickers"):
            result = data.get("result") or {}
            gone = [r for r in result.get("list", []) if r.get("symbol") in fault.delisted]
            result["list"] = [r for r in result.get("list", []) if r.get("symbol") not in fault.delisted]
            if gone and endpoint == "/v5/market/tickers":
                record(endpoint, "delisted", gone, "symbol", None, data.get("time"))
        return data

    def invalid_symbol() -> web.Response:
        if venue == "binance":
            return json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return json_response({"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}, "retExtInfo": {},
                              "time": int(time.time() * 1000)})

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if request.path.startswith("/_emulator/") or request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        body = await request.read()  # cached: every reader gets the whole body
        endpoint = _endpoint(request, body)
        if fault.delisted and request.query.get("symbol") in fault.delisted:
            fault.counts["invalid_symbol"] += 1
            return invalid_symbol()
        active = fault.active()
        if active and fault.mode == "maintenance":
            fault.spend()
            fault.counts["maintenance"] += 1
            return maintenance(venue)
        if active and fault.mode == "refuse":
            fault.spend()
            fault.counts["refused"] += 1
            if request.transport is not None:
                request.transport.abort()  # no answer at all: a reset connection
            raise web.HTTPServiceUnavailable  # never reaches the client
        if active and fault.mode == "timeout":
            fault.spend()
            fault.counts["timeout"] += 1
            await asyncio.sleep(fault.delay_s)
        response = await handler(request)
        target = DATA_ENDPOINTS.get((venue, endpoint))
        malformed = (active and fault.mode == "malformed" and target is not None
                     and fault.endpoint in ("", endpoint))
        if not (fault.delisted or malformed) or not isinstance(response, web.Response) or response.status != 200:
            return response
        try:
            data = msgspec.json.decode(response.body)
        except (msgspec.DecodeError, TypeError):
            return response
        data = delist(endpoint, data)
        if malformed:
            where, symbol_key, value_field, time_field = target
            rows = _rows(data, where)
            hit = [r for r in rows if not fault.symbol or r.get(symbol_key) == fault.symbol]
            if hit:
                fault.spend()
                fault.counts[f"malformed_{fault.kind}"] += len(hit)
                envelope_ms = data.get("time") if isinstance(data, dict) else None
                record(endpoint, f"malformed {fault.kind}", hit, symbol_key, time_field, envelope_ms,
                       request.headers.get("X-Derivs-Op", ""))
                if fault.kind == "nonjson":
                    return web.Response(status=200, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
                for r in hit:
                    _mutate(r, fault.kind, value_field, time_field)
            if where == "hl":
                for r in rows:
                    r.pop("name", None)
        return web.Response(body=msgspec.json.encode(data), status=response.status, content_type="application/json",
                            headers={k: v for k, v in response.headers.items() if k.lower().startswith("x-")})

    async def set_fault(request: web.Request) -> web.Response:
        q = request.query
        mode = q.get("mode", "none")
        kind = q.get("kind", "missing")
        if mode not in MODES or kind not in MUTATIONS:
            raise web.HTTPBadRequest(text=f"mode must be one of {MODES} and kind one of {MUTATIONS}; got {mode!r}, {kind!r}")
        try:
            seconds = float(q["seconds"]) if "seconds" in q else None
            count = int(q["count"]) if "count" in q else None
            delay = float(q.get("delay", 15.0))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"seconds, count and delay must be numbers: {exc}") from None
        fault.mode, fault.kind, fault.symbol, fault.delay_s, fault.left = mode, kind, q.get("symbol", ""), delay, count
        fault.endpoint = q.get("endpoint", "")
        fault.until = time.monotonic() + seconds if seconds is not None else float("inf")
        logger.info("{} fault: {} ({}) for {} s / {} answers", venue, mode, kind if mode == "malformed" else "-",
                    seconds if seconds is not None else "ever", count if count is not None else "all")
        return json_response(state())

    async def set_delisted(request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        if venue == "hyperliquid":
            raise web.HTTPBadRequest(text="delisting is emulated for binance and bybit only")
        if not symbol:
            raise web.HTTPBadRequest(text="symbol is required, e.g. ?symbol=BTCUSDT")
        if request.query.get("relist"):
            fault.delisted.discard(symbol)
        else:
            fault.delisted.add(symbol)
        logger.info("{} delisted: {}", venue, sorted(fault.delisted) or "none")
        return json_response(state())

    def state() -> dict:
        return {"venue": venue, "mode": fault.mode, "kind": fault.kind, "symbol": fault.symbol, "left": fault.left,
                "delisted": sorted(fault.delisted), "counts": dict(fault.counts)}

    async def get_state(request: web.Request) -> web.Response:
        fault.active()
        return json_response(state())

    app.middlewares.append(middleware)
    app.add_routes([
        web.post("/_emulator/fault", set_fault),
        web.post("/_emulator/delist", set_delisted),
        web.get("/_emulator/faults", get_state),
    ])
    return fault
