"""Recording of a client's raw venue traffic, for replay by the emulator
(`python -m emulator --replay DIR`, `emulator/replay.py`).

One JSON line per REST answer in `<dir>/<venue>.jsonl` (file 0600, directory 0700):
`{"ts_ns", "venue", "op", "method", "url", "request_body", "status", "headers", "body"}`, and one
per WebSocket liquidation message `{"ts_ns", "venue", "kind": "ws", "op", "url", "message"}`
(recorded through the client's `record_frame`, by `venues/liquidation_stream.py`). The client
(`venues/client.py`) writes every REST answer here when it is given a `record_dir`.
`ts_ns` is when the answer arrived (the receive time the client used), `op` what the adapter was doing (`open_interest`,
`funding`, ...; set with `operation(...)`), `body` the answer exactly as received.

Secrets never reach the file: request headers are not kept at all (API keys and signatures
travel there), signed query parameters and body fields (`signature`, `apiKey`, `sign`...) are
replaced by `<redacted>`, and of the answer's headers only the rate-limit ones and the content
type are kept.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from actors.logs import make_private_dir

SECRET_KEYS = {"signature", "sign", "apikey", "api_key", "x-mbx-apikey", "x-bapi-api-key", "x-bapi-sign", "secret",
               "privatekey", "private_key", "vaultaddress"}
KEPT_HEADERS = {"content-type", "retry-after", "x-mbx-used-weight-1m", "x-bapi-limit", "x-bapi-limit-status",
                "x-bapi-limit-reset-timestamp"}
REDACTED = "<redacted>"

current_op: contextvars.ContextVar[str] = contextvars.ContextVar("recording_op", default="")
_encoder = msgspec.json.Encoder()


@contextmanager
def operation(name: str) -> Iterator[None]:
    """Label the requests made inside (recorded as `op`, sent to the emulator as X-Derivs-Op)."""
    token = current_op.set(name)
    try:
        yield
    finally:
        current_op.reset(token)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, REDACTED if k.lower() in SECRET_KEYS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="<>")))


def redact_body(body: Any) -> str | None:
    """A request body (JSON or form) with secret fields replaced."""
    if body is None:
        return None
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError:
        if "=" in text:  # form encoded
            return urlencode([(k, REDACTED if k.lower() in SECRET_KEYS else v) for k, v in parse_qsl(text)], safe="<>")
        return text
    return _encoder.encode(_redact(data)).decode()


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class Recorder:
    """Appends a venue's answers to `<directory>/<venue>.jsonl`."""

    def __init__(self, directory: str | os.PathLike, venue: str):
        self.path = make_private_dir(directory) / f"{venue}.jsonl"
        self.venue = venue
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.path, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)  # one write per line: a crash loses nothing

    def write(self, code: int, url: str, method: str, headers: dict | None, body: str | None,
              request_headers: Any = None, request_body: Any = None, *, ts_ns: int | None = None) -> None:
        """`ts_ns`: the receive time the client gave the answer (its rows' `ts_recv`), so that a
        replay hands the client exactly that time back; default now."""
        line = {
            "ts_ns": time.time_ns() if ts_ns is None else ts_ns, "venue": self.venue, "op": current_op.get(), "method": method,
            "url": redact_url(url), "request_body": redact_body(request_body), "status": code,
            "headers": {k: v for k, v in (headers or {}).items() if k.lower() in KEPT_HEADERS},
            "body": body,
        }
        self._file.write(_encoder.encode(line) + b"\n")

    def frame(self, url: str, message: Any, ts_ns: int | None = None) -> None:
        """A WebSocket data message as the client decoded it (`kind: ws`; liquidations)."""
        if self._file.closed:
            return
        line = {"ts_ns": time.time_ns() if ts_ns is None else ts_ns, "venue": self.venue, "kind": "ws",
                "op": current_op.get() or "liquidations", "url": redact_url(str(url)), "message": message}
        self._file.write(_encoder.encode(line) + b"\n")

    def close(self) -> None:
        self._file.close()


def load(path: str | os.PathLike) -> list[dict]:
    """The recorded answers of one file, in order."""
    return [msgspec.json.decode(line) for line in Path(path).read_bytes().splitlines() if line.strip()]
