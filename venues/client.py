"""The project's ccxt client: each venue's ccxt class, extended (as ccxt documents: subclass the
exchange and override its methods) with what every request and answer goes through here.

    client = adapter.client(sandbox_url, pro=False, record_dir=None, on_raw_message=None)

`client_class(adapter_class, pro)` is that venue's subclass, `VenueClient` + the ccxt class named
by the adapter (`ccxt_id`), made once per venue and kind (REST / ccxt.pro). It owns:

- **the request budget** (`venues/budget.py`, with the venue's `limits`): `fetch` waits for
  tokens, and retries a call the venue refused for its rate; `on_rest_response` reads every
  answer's usage headers and refusals. It replaces ccxt's own REST throttle.
- **the receive time** of every answer (`received_ns()` in the task that awaited it: the `ts_recv`
  of its events); a replayed answer (`python -m emulator --replay`) carries the time it was recorded.
- **recording** (`record_dir`, `venues/recording.py`): every REST answer, and `record_frame` for the
  WebSocket messages the liquidation stream keeps; closed with the client.
- **the sandbox**: with `sandbox_url`, the venue's base URLs point at the emulator (the adapter's
  `sandbox_config`), the budget takes the emulator's rate-limit settings (`emulator_limits`), and
  each request says what the adapter was doing (`X-Derivs-Op`: the replay matches on it).
- **raw WebSocket messages** (ccxt.pro): `on_raw_message(ws_client, message)` sees every message
  before ccxt does and returns True to keep it from ccxt's own handler (the liquidation stream's
  hook: pass it to the constructor, or set the attribute before the first watch, or override it).

API keys are optional and read from the environment only (`<ENV_PREFIX>_API_KEY` / `_SECRET`);
they never reach a log line or a recording.
"""

from __future__ import annotations

import contextvars
import functools
import os
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt.async_support as ccxt_async
import msgspec
from loguru import logger

from venues.budget import RETRIES, Budget
from venues.recording import Recorder, current_op

REPLAY_HEADER = "X-Derivs-Recorded-Ns"  # sent by `python -m emulator --replay`
OP_HEADER = "X-Derivs-Op"  # sandbox only: what the adapter was doing (the replay matches on it)

# When the last answer of a venue reached this task (a replayed answer: when it was recorded).
_received: contextvars.ContextVar[int | None] = contextvars.ContextVar("received_ns", default=None)

RawMessageHook = Callable[[Any, Any], bool | None]  # (ccxt.pro ws client, decoded message) -> consumed?


def now_ns() -> int:
    return time.time_ns()


def received_ns() -> int:
    """Receive time of the last answer awaited in this task (now if none): `ts_recv` of its events."""
    return _received.get() or now_ns()


def set_received(ns: int) -> None:
    _received.set(ns)


async def timed(call: Awaitable[Any]) -> tuple[Any, int]:
    """(result, its receive time): for calls run in their own task, whose receive time is not ours."""
    result = await call
    return result, received_ns()


def emulator_limits(base_url: str) -> tuple[bool, float]:
    """(enforced, window scale) of the emulator at `base_url`: the sandbox budget mirrors them, so
    a scaled-down emulator is paced at its own (faster) rate and an unlimited one is not paced.
    An emulator that cannot be asked (down) gets the real venue's limits."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/_emulator/ratelimit", timeout=1.0) as answer:
            state = msgspec.json.decode(answer.read())
        return bool(state["enabled"]), float(state["scale"])
    except (OSError, ValueError, KeyError, TypeError, msgspec.DecodeError):
        return True, 1.0


class VenueClient:
    """Mixin in front of a venue's ccxt class (see module doc); `adapter` is set per venue by
    `client_class`: its `name`, `venue`, `options`, `env_prefix`, `limits`, `sandbox_config`."""

    adapter: Any
    is_pro = False
    # set by __init__; class defaults because ccxt's constructor reads every attribute (to alias it in camelCase)
    sandbox = False
    recorder: Recorder | None = None
    on_raw_message: RawMessageHook | None = None
    budget: Budget | None = None

    def __init__(self, *, sandbox_url: str | None = None, record_dir: str | None = None,
                 on_raw_message: RawMessageHook | None = None) -> None:
        ad = self.adapter
        config = ad.sandbox_config(sandbox_url) if sandbox_url else {}
        config.setdefault("options", {}).update(ad.options)
        config["enableRateLimit"] = True
        key, secret = os.environ.get(f"{ad.env_prefix}_API_KEY"), os.environ.get(f"{ad.env_prefix}_API_SECRET")
        if key and secret:
            config.update(apiKey=key, secret=secret)
        super().__init__(config)  # type: ignore[call-arg]  # the ccxt class
        self.sandbox = bool(sandbox_url)
        self.recorder = Recorder(record_dir, ad.name) if record_dir else None
        self.on_raw_message = on_raw_message
        enforced, scale = emulator_limits(sandbox_url) if sandbox_url else (True, 1.0)
        self.budget = Budget(ad.limits, ad.venue, scale, enabled=enforced)
        if enforced and not self.is_pro:  # ccxt.pro also throttles WebSocket subscriptions with it: leave that on
            self.enableRateLimit = False  # the budget paces REST; ccxt's throttle would halve Binance

    @property
    def derivs_recorder(self) -> Recorder | None:  # the name `venues/liquidation_stream.py` reads
        return self.recorder

    # -- REST -------------------------------------------------------------------------------------

    async def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        """Every REST request: within the budget, retried after a rate-limit answer (not a ban)."""
        if self.sandbox and (op := current_op.get()):
            headers = {**(headers or {}), OP_HEADER: op}
        cost = self.adapter.limits.weights(method, url, body)
        for attempt in range(1, RETRIES + 1):
            await self.budget.acquire(cost)
            self.budget.forget_answer()
            try:
                return await super().fetch(url, method, headers, body)  # type: ignore[misc]
            except ccxt_async.BaseError:
                if not self.budget.limit_answer() or self.budget.banned or attempt == RETRIES:
                    raise
        raise AssertionError("unreachable")

    def on_rest_response(self, code, reason, url, method, headers, body, request_headers, request_body):  # noqa: ANN001, ANN201
        """Every REST answer: the budget reads it, its receive time is kept, the recorder writes it."""
        self.budget.observe(code, headers, body)
        replayed = (headers or {}).get(REPLAY_HEADER) if self.sandbox else None
        received = int(replayed) if replayed and replayed.isdigit() else now_ns()
        _received.set(received)
        if self.recorder is not None:  # the same receive time: a replay gives it back to the client
            self.recorder.write(code, url, method, headers, body, request_headers, request_body, ts_ns=received)
        return super().on_rest_response(code, reason, url, method, headers, body, request_headers, request_body)  # type: ignore[misc]

    # -- WebSocket (ccxt.pro) ---------------------------------------------------------------------

    def handle_message(self, client: Any, message: Any) -> Any:
        """ccxt.pro's handler of every WebSocket message (ccxt binds it to each connection it
        dials): `on_raw_message` first; what it keeps does not reach ccxt's own parsers."""
        hook = self.on_raw_message
        if hook is not None:
            try:
                if hook(client, message):
                    return None
            except Exception:  # our bug must not break ccxt's receive loop
                logger.bind(venue=self.adapter.venue).exception("raw WebSocket message hook failed")
        return super().handle_message(client, message)  # type: ignore[misc]

    def record_frame(self, url: str, message: Any) -> None:
        """Record a WebSocket message (`record_dir`), for `python -m emulator --replay`."""
        if self.recorder is not None:
            self.recorder.frame(url, message)

    async def close(self) -> None:
        await super().close()  # type: ignore[misc]
        if self.recorder is not None:
            self.recorder.close()


@functools.cache
def client_class(adapter_class: type, pro: bool = False) -> type:
    """The venue's client class: `VenueClient` in front of its ccxt (or ccxt.pro) class. ccxt.pro
    is imported only when a pro client is asked for (it costs start-up time the CLI need not pay)."""
    if pro:
        import ccxt.pro as module
    else:
        module = ccxt_async
    base = getattr(module, adapter_class.ccxt_id)
    name = adapter_class.__name__.removesuffix("Adapter") + ("ProClient" if pro else "Client")
    return type(name, (VenueClient, base), {"adapter": adapter_class, "is_pro": pro,
                                              "__doc__": f"{adapter_class.venue}'s {base.__module__}.{base.__name__}, "
                                                         "with the project's budget, recording and sandbox hooks."})
