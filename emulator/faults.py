"""Owns the venue faults on demand: maintenance, timeouts, dropped connections, malformed payloads and
delisted symbols. Installed on every venue app by `emulator/server.py` (outermost middleware); what differs per
venue (its maintenance and invalid-symbol answers, where its data rows are, how it delists) comes
with the venue as a `FaultRules` (`emulator/<venue>/faults.py`).

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
- `POST /_emulator/delist?symbol=SYM[&relist=1]`: the venue stops listing SYM: Binance and Bybit
  drop it from their instrument lists and ticker lists, per-symbol calls answer "invalid symbol";
  Hyperliquid keeps the coin in its universe with `isDelisted: true` (as the real one does), its
  asset context without a book (zero OI and funding, premium/midPx/impactPxs null), and leaves it
  out of predictedFundings. Its liquidations stop. The opposite, listing a new perpetual, is
  `POST /_emulator/list?symbol=SYM` (`emulator/listings.py`; `GET /_emulator/universe` shows both).
- `GET /_emulator/faults`: the current fault, delisted symbols, and counters.

Every corrupted or withheld row is written to the ground truth as `{"kind": "fault", ...}` with the
venue symbol and its timestamp, so tests know exactly which served values are not data.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web
from loguru import logger

from emulator.common import as_middleware, json_response
from emulator.ground_truth import GroundTruth

MODES = ("none", "maintenance", "timeout", "refuse", "malformed")
# kind -> what happens to the targeted field of a row
MUTATIONS = ("missing", "type", "nan", "negative", "future", "past", "nonjson")
_DAY_MS = 86_400_000

# record(endpoint, what, rows, symbol_key, time_field, envelope_ms[, op]): ground-truth lines of faulted rows
Record = Callable[..., None]


def one_row(data: Any) -> list[dict]:
    """The answer is one row."""
    return [data]


def rows_or_row(data: Any) -> list[dict]:
    """The answer is one row (a dict) or a list of rows."""
    if isinstance(data, dict):
        return [data]
    return data if isinstance(data, list) else []


def request_path(request: web.Request, body: bytes) -> str:
    """The endpoint of a request is its path (Hyperliquid's is its info type)."""
    return request.path


@dataclass(frozen=True)
class DataRows:
    """Where the rows of one data endpoint's answer are, and the fields a malformed fault hits."""

    rows: Callable[[Any], list[dict]]  # the answer's rows (dicts of the answer itself: mutated in place)
    symbol_key: str
    value_field: str
    time_field: str | None
    cleanup: Callable[[list[dict]], None] | None = None  # undo what `rows` added to the rows


@dataclass(frozen=True)
class FaultRules:
    """One venue's side of the faults."""

    maintenance: Callable[[], web.Response]  # its answer during a maintenance window
    data_endpoints: Mapping[str, DataRows]  # endpoint -> its rows
    invalid_symbol: Callable[[], web.Response] | None = None  # None: delisting is not emulated
    # delist(endpoint, answer, delisted symbols, record) -> the answer without them
    delist: Callable[[str, Any, set[str], Record], Any] | None = None
    endpoint: Callable[[web.Request, bytes], str] = request_path


@dataclass
class Fault:
    """The fault in force on one venue app, the delisted symbols and what was done so far."""

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


class FaultInjector:
    """The faults of one venue app: a middleware that applies them and the control endpoints."""

    def __init__(self, venue: str, rules: FaultRules, recorder: GroundTruth) -> None:
        self.venue, self.rules, self.recorder = venue, rules, recorder
        self.fault = Fault()

    def install(self, app: web.Application) -> None:
        app.middlewares.append(as_middleware(self.middleware))
        app.add_routes([
            web.post("/_emulator/fault", self.set_fault),
            web.post("/_emulator/delist", self.set_delisted),
            web.get("/_emulator/faults", self.get_state),
        ])

    def record(self, endpoint: str, what: str, rows: list[dict], symbol_key: str, time_field: str | None,
               envelope_ms: Any, op: str = "") -> None:
        """One ground-truth line per row that a fault withheld or corrupted."""
        self.recorder.write([{
            "venue": self.venue.upper(), "kind": "fault", "fault": what, "endpoint": endpoint, "op": op,
            "raw_symbol": r.get(symbol_key), "ts_ms": r.get(time_field) if time_field else envelope_ms,
            "served_ns": time.time_ns(),
        } for r in rows])

    def state(self) -> dict:
        fault = self.fault
        return {"venue": self.venue, "mode": fault.mode, "kind": fault.kind, "symbol": fault.symbol, "left": fault.left,
                "delisted": sorted(fault.delisted), "counts": dict(fault.counts)}

    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Every venue request: the invalid-symbol answer for a delisted symbol, maintenance, refuse,
        delay, or serve it (then `rewrite`)."""
        fault, rules = self.fault, self.rules
        if request.path.startswith("/_emulator/") or request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        body = await request.read()  # cached: every reader gets the whole body
        endpoint = rules.endpoint(request, body)
        if fault.delisted and request.query.get("symbol") in fault.delisted and rules.invalid_symbol is not None:
            fault.counts["invalid_symbol"] += 1
            return rules.invalid_symbol()
        active = fault.active()
        if active and fault.mode == "maintenance":
            fault.spend()
            fault.counts["maintenance"] += 1
            return rules.maintenance()
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
        return self.rewrite(request, endpoint, active, await handler(request))

    def rewrite(self, request: web.Request, endpoint: str, active: bool, response: web.StreamResponse) -> web.StreamResponse:
        """A served answer without the delisted symbols, its rows corrupted if a malformed fault
        targets them (each such row recorded); any other answer unchanged."""
        fault, rules = self.fault, self.rules
        target = rules.data_endpoints.get(endpoint)
        malformed = (active and fault.mode == "malformed" and target is not None
                     and fault.endpoint in ("", endpoint))
        if not (fault.delisted or malformed) or not isinstance(response, web.Response) or response.status != 200:
            return response
        try:
            data = msgspec.json.decode(response.body)
        except (msgspec.DecodeError, TypeError):
            return response
        if rules.delist is not None:
            data = rules.delist(endpoint, data, fault.delisted, self.record)
        if malformed:
            rows = target.rows(data)
            hit = [r for r in rows if not fault.symbol or r.get(target.symbol_key) == fault.symbol]
            if hit:
                fault.spend()
                fault.counts[f"malformed_{fault.kind}"] += len(hit)
                envelope_ms = data.get("time") if isinstance(data, dict) else None
                self.record(endpoint, f"malformed {fault.kind}", hit, target.symbol_key, target.time_field, envelope_ms,
                            request.headers.get("X-Derivs-Op", ""))
                if fault.kind == "nonjson":
                    return web.Response(status=200, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
                for r in hit:
                    _mutate(r, fault.kind, target.value_field, target.time_field)
            if target.cleanup is not None:
                target.cleanup(rows)
        return web.Response(body=msgspec.json.encode(data), status=response.status, content_type="application/json",
                            headers={k: v for k, v in response.headers.items() if k.lower().startswith("x-")})

    async def set_fault(self, request: web.Request) -> web.Response:
        """POST /_emulator/fault?mode=M[&seconds=S][&count=N][&kind=K][&symbol=SYM][&endpoint=E][&delay=D]."""
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
        fault = self.fault
        fault.mode, fault.kind, fault.symbol, fault.delay_s, fault.left = mode, kind, q.get("symbol", ""), delay, count
        fault.endpoint = q.get("endpoint", "")
        fault.until = time.monotonic() + seconds if seconds is not None else float("inf")
        logger.info("{} fault: {} ({}) for {} s / {} answers", self.venue, mode, kind if mode == "malformed" else "-",
                    seconds if seconds is not None else "ever", count if count is not None else "all")
        return json_response(self.state())

    async def set_delisted(self, request: web.Request) -> web.Response:
        """POST /_emulator/delist?symbol=SYM[&relist=1]: the venue stops (or resumes) listing SYM."""
        symbol = request.query.get("symbol", "")
        if self.rules.delist is None:
            raise web.HTTPBadRequest(text=f"delisting is not emulated for {self.venue}")
        if not symbol:
            raise web.HTTPBadRequest(text="symbol is required, e.g. ?symbol=BTCUSDT")
        if request.query.get("relist"):
            self.fault.delisted.discard(symbol)
        else:
            self.fault.delisted.add(symbol)
        logger.info("{} delisted: {}", self.venue, sorted(self.fault.delisted) or "none")
        return json_response(self.state())

    async def get_state(self, request: web.Request) -> web.Response:
        """GET /_emulator/faults: the current fault, the delisted symbols and the counters."""
        self.fault.active()
        return json_response(self.state())


def install(app: web.Application, venue: str, rules: FaultRules, recorder: GroundTruth) -> Fault:
    """Add the fault middleware and its control routes to a venue app (before it starts)."""
    injector = FaultInjector(venue, rules, recorder)
    injector.install(app)
    return injector.fault
