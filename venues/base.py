"""What every venue adapter shares: the ccxt client, symbol resolution, instrument definitions.

A venue adapter turns ccxt results into `messages.events` structs. The normalizers are pure
functions of (ccxt structure, market, receive time), so they are unit-tested without a network;
the `fetch_*` coroutines only call ccxt and hand the results to them.
"""

import contextvars
import difflib
import math
import os
import random
import time
from decimal import ROUND_HALF_EVEN, Decimal
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import msgspec
from loguru import logger

import ccxt.async_support as ccxt_async

from venues.budget import attach, emulator_limits
from venues.recording import Recorder, current_op

from messages.events import AnyEvent, FundingRate, Instrument, Malformed, OpenInterest, Venue
from messages.timeunits import MS

Market = dict[str, Any]


def now_ns() -> int:
    return time.time_ns()


# When the last answer of a venue reached this task (a replayed answer: when it was recorded).
_received: contextvars.ContextVar[int | None] = contextvars.ContextVar("received_ns", default=None)
REPLAY_HEADER = "X-Derivs-Recorded-Ns"  # sent by `python -m emulator --replay`
OP_HEADER = "X-Derivs-Op"  # sandbox only: what the adapter was doing (the replay matches on it)


def received_ns() -> int:
    """Receive time of the last answer awaited in this task (now if none): `ts_recv` of its events."""
    return _received.get() or now_ns()


def set_received(ns: int) -> None:
    _received.set(ns)


async def timed(call: Awaitable[Any]) -> tuple[Any, int]:
    """(result, its receive time): for calls run in their own task, whose receive time is not ours."""
    result = await call
    return result, received_ns()


def ms_to_ns(ms: int | float | None) -> int | None:
    return None if ms is None else int(ms) * MS


def decimal(text: Any) -> Decimal:
    """A venue's decimal string as a finite Decimal, or MalformedItem naming the value."""
    try:
        value = Decimal(text) if isinstance(text, str) else None
    except ArithmeticError:
        value = None
    if value is None or not value.is_finite():
        raise MalformedItem(f"not a decimal number: {_short(text)}")
    return value


def exact(text: Any) -> str:
    """A venue's decimal string unchanged ("0.10" stays "0.10"), once checked to be a number."""
    decimal(text)
    return text


def places(text: str) -> int:
    """Decimal places of a number as the venue writes it, trailing zeros included ("0.10" -> 2,
    "10" -> 0): the precision Nautilus's `Price.from_str` / `Quantity.from_str` give it."""
    return max(0, -decimal(text).as_tuple().exponent)


def at_precision(text: str, precision: int) -> str:
    """`text` with exactly `precision` places, as Nautilus's `Price(float(text), precision)` prints it."""
    return f"{decimal(text).quantize(Decimal(1).scaleb(-precision), ROUND_HALF_EVEN):f}"


class MalformedItem(ValueError):
    """A venue value that cannot be normalized; the message names the field and the value."""


def number(row: Any, key: str) -> float:
    """A finite number from a venue payload's field (numbers come as strings), or MalformedItem."""
    value = row.get(key) if isinstance(row, dict) else None
    if value is None or value == "":
        raise MalformedItem(f"{key} missing")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedItem(f"{key} is not a number: {_short(value)}")
    try:
        x = float(value)
    except ValueError:
        raise MalformedItem(f"{key} is not a number: {_short(value)}") from None
    if not math.isfinite(x):
        raise MalformedItem(f"{key} is not a finite number: {_short(value)}")
    return x


def field(struct: dict, key: str, raw_key: str | None = None) -> float:
    """A finite number of a ccxt structure, or MalformedItem naming what the venue sent."""
    value = struct.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    info = struct.get("info")
    if raw_key is None or not isinstance(info, dict):
        raise MalformedItem(f"{key} is {_short(value)}")
    sent = f"the venue sent {raw_key}={_short(info[raw_key])}" if raw_key in info else f"{raw_key} missing"
    raise MalformedItem(f"{key} is {_short(value)}: {sent}")


def info_of(struct: Any) -> Any:
    """The venue's raw item inside a ccxt structure (for a dead letter), or the thing itself."""
    return struct.get("info", struct) if isinstance(struct, dict) else struct


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def excerpt(payload: Any, limit: int = 2000) -> str:
    """What the venue sent, as JSON text cut to `limit` characters (for a dead letter)."""
    try:
        text = msgspec.json.encode(payload, enc_hook=repr).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        text = repr(payload)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException, limit: int) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


def describe(exc: BaseException, limit: int = 300) -> str:
    """A short reason for a log line: the ccxt class says more than the message alone."""
    text = _first_line(exc, limit)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def reason_of(exc: BaseException) -> str:
    """`describe`, except that a MalformedItem's message alone already names field and value."""
    return _first_line(exc, 300) if isinstance(exc, MalformedItem) else describe(exc)


BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0


def backoff_delay(failures: int, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_MAX_S,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: initial x 2^(failures-1), capped, x U(0.5, 1)."""
    return min(cap, initial * 2 ** max(0, failures - 1)) * (rng or random).uniform(0.5, 1.0)


class UnknownSymbol(LookupError):
    """A symbol the venue does not list as a linear perpetual."""

    def __init__(self, venue: str, symbol: str, suggestions: list[str]):
        self.venue, self.symbol, self.suggestions = venue, symbol, suggestions
        hint = f"; closest listed: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown symbol {symbol!r} on {venue} (not a listed linear perpetual){hint}")


class VenueAdapter:
    """Base of the per-venue adapters. Subclasses set the class attributes and normalizers."""

    name: ClassVar[str]  # topology name: binance
    venue: ClassVar[Venue]  # BINANCE
    ccxt_id: ClassVar[str]  # binanceusdm
    env_prefix: ClassVar[str]  # BINANCE -> BINANCE_API_KEY / BINANCE_API_SECRET
    options: ClassVar[dict[str, Any]] = {}
    _absent: set[str] = frozenset()  # type: ignore[assignment]  # symbols the venue stopped answering for

    # -- client ---------------------------------------------------------------------------

    def client(self, sandbox_url: str | None = None, *, pro: bool = False, record_dir: str | None = None) -> Any:
        """A ccxt async (or ccxt.pro) client: the real venue, or the emulator at `sandbox_url`.

        Its REST requests go through the venue's request budget (`venues/budget.py`);
        `record_dir` also records every answer there (`venues/recording.py`). Keys are optional
        and read from the environment only; they never reach a log line or a recording. Against the
        emulator, the budget takes the emulator's rate-limit settings (`emulator_limits`).
        """
        if sandbox_url:
            from emulator.ccxt_config import ccxt_config

            config = ccxt_config(self.name, sandbox_url)
        else:
            config = {}
        config.setdefault("options", {}).update(self.options)
        config["enableRateLimit"] = True
        key, secret = os.environ.get(f"{self.env_prefix}_API_KEY"), os.environ.get(f"{self.env_prefix}_API_SECRET")
        if key and secret:
            config.update(apiKey=key, secret=secret)
        if pro:
            import ccxt.pro as ccxt_pro

            client = getattr(ccxt_pro, self.ccxt_id)(config)
        else:
            client = getattr(ccxt_async, self.ccxt_id)(config)
        recorder = Recorder(record_dir, self.name) if record_dir else None
        def on_response(code: int, url: str, method: str, headers: Any, body: Any, *request: Any) -> None:
            replayed = (headers or {}).get(REPLAY_HEADER) if sandbox_url else None
            received = int(replayed) if replayed and replayed.isdigit() else now_ns()
            _received.set(received)
            if recorder is not None:  # the same receive time: a replay gives it back to the client
                recorder.write(code, url, method, headers, body, *request, ts_ns=received)

        enforced, scale = emulator_limits(sandbox_url) if sandbox_url else (True, 1.0)
        attach(client, self.name, scale=scale, enabled=enforced, pro=pro, on_response=on_response)
        if sandbox_url:
            budgeted = client.fetch

            async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
                op = current_op.get()
                return await budgeted(url, method, {**(headers or {}), OP_HEADER: op} if op else headers, body)

            client.fetch = fetch
        if recorder is not None:
            client.derivs_recorder = recorder  # a ccxt.pro client's liquidation frames (venues/liquidation_stream.py)
            original_close = client.close

            async def close() -> None:
                await original_close()
                recorder.close()

            client.close = close
        return client

    # -- symbols --------------------------------------------------------------------------

    def perpetuals(self, markets: dict[str, Market]) -> dict[str, Market]:
        """The venue's active linear perpetuals, by ccxt unified symbol."""
        return {
            s: m
            for s, m in markets.items()
            if m.get("swap") and m.get("linear") and m.get("active") is not False
        }

    def instrument_id(self, market: Market) -> str:
        raise NotImplementedError

    def raw_symbol(self, market: Market) -> str:
        return market["id"]

    def aliases(self, market: Market) -> list[str]:
        """Every way a user may name this market: unified, venue id, Nautilus id (with and
        without the venue suffix), base coin."""
        iid = self.instrument_id(market)
        return [market["symbol"], self.raw_symbol(market), iid, iid.rsplit(".", 1)[0], market["base"]]

    def resolve(self, markets: dict[str, Market], text: str) -> Market:
        """The market a user meant, or UnknownSymbol with the closest listed names."""
        table: dict[str, Market] = {}
        for market in self.perpetuals(markets).values():
            for alias in self.aliases(market):
                table.setdefault(alias.upper(), market)
        found = table.get(text.strip().upper())
        if found is not None:
            return found
        names = sorted({self.raw_symbol(m) for m in self.perpetuals(markets).values()})
        close = difflib.get_close_matches(text.strip().upper(), [n.upper() for n in names], n=3, cutoff=0.5)
        by_upper = {n.upper(): n for n in names}
        raise UnknownSymbol(self.venue, text, [by_upper[c] for c in close])

    # -- normalization --------------------------------------------------------------------

    def instrument(self, market: Market, ts_recv: int) -> Instrument:
        """The perpetual's definition, valued as NautilusTrader 1.231's own adapter for this venue
        values its `CryptoPerpetual` from the same venue item (ccxt keeps it in `market["info"]`;
        ccxt's own numbers lose the tick's written precision: "0.10" -> 0.1)."""
        return Instrument(
            venue=self.venue,
            symbol=market["symbol"],
            instrument_id=self.instrument_id(market),
            ts_event=ts_recv,
            ts_recv=ts_recv,
            raw_symbol=self.raw_symbol(market),
            max_leverage=((market.get("limits") or {}).get("leverage") or {}).get("max"),
            **self.definition(market["info"]),
        )

    def instrument_event(self, market: Market, ts_recv: int) -> Instrument | Malformed:
        """`instrument`, or a Malformed event naming what the venue's listing item lacks."""
        return self.safely(market, market.get("info"), ts_recv, lambda: self.instrument(market, ts_recv))

    def definition(self, item: dict) -> dict[str, Any]:
        """`Instrument` fields from the venue's raw listing item (per venue, as its Nautilus adapter)."""
        raise NotImplementedError

    # -- per item: a bad item becomes a Malformed event, never an exception ---------------

    def malformed(self, market: Market, reason: str, raw: Any, ts_recv: int) -> Malformed:
        return Malformed(venue=self.venue, symbol=market["symbol"], instrument_id=self.instrument_id(market),
                         ts_event=ts_recv, ts_recv=ts_recv, reason=reason[:1000], raw=excerpt(raw))

    def safely(self, market: Market, raw: Any, ts_recv: int, build: Callable[[], AnyEvent]) -> AnyEvent:
        """`build()`, or a Malformed event with the reason if the venue's item cannot be normalized."""
        try:
            event = build()
            msgspec.msgpack.encode(event)  # e.g. a timestamp beyond 64 bits: the collector could not send it
            return event
        except Exception as exc:  # noqa: BLE001 - whatever a bad payload does, it must not abort the fetch
            return self.malformed(market, reason_of(exc), raw, ts_recv)

    def unparsable(self, markets: list[Market], exc: BaseException, ts_recv: int) -> list[Malformed]:
        """The whole answer could not be read (not JSON, wrong shape): one Malformed per market."""
        return [self.malformed(m, f"answer could not be parsed: {reason_of(exc)}", "", ts_recv) for m in markets]

    def absent(self, markets: list[Market], found: Any, what: str) -> list[Market]:
        """The markets the venue's answer left out (delisted while running?): logged, not fatal."""
        missing = [m for m in markets if m["symbol"] not in found]
        for m in missing:
            if m["symbol"] not in self._absent:
                logger.bind(venue=self.venue).error("{} {}: not in the venue's {} answer (delisted?); skipped until it is back",
                                                    self.venue, self.raw_symbol(m), what)
        for m in markets:
            if m["symbol"] in found and m["symbol"] in self._absent:
                logger.bind(venue=self.venue).info("{} {}: listed again", self.venue, self.raw_symbol(m))
        self._absent = ({m["symbol"] for m in missing} | self._absent) - {m["symbol"] for m in markets if m["symbol"] in found}
        return missing

    async def per_symbol(self, call: Awaitable[Any], markets: list[Market], what: str,
                         build: Callable[[dict, Market, int], AnyEvent]) -> list[AnyEvent]:
        """One answer for all markets (`call`, a ccxt `fetch_*s`), normalized market by market:
        an unreadable answer or item becomes Malformed events, a market left out is logged."""
        try:
            found = await call
        except ccxt_async.BadResponse as exc:  # ccxt could not read the answer
            return self.unparsable(markets, exc, received_ns())
        except ccxt_async.BaseError:
            raise  # the venue is down, busy, in maintenance or refusing: the collector backs off
        except Exception as exc:  # noqa: BLE001 - ccxt choked on the answer itself
            return self.unparsable(markets, exc, received_ns())
        ts_recv = received_ns()
        if not isinstance(found, dict) or not found:  # read as nothing: not JSON, or not the venue's shape
            return self.unparsable(markets, MalformedItem(f"{what} answer holds no items (not JSON?)"), ts_recv)
        self.absent(markets, found, what)
        return [self.safely(m, info_of(found[m["symbol"]]), ts_recv, lambda m=m: build(found[m["symbol"]], m, ts_recv))
                for m in markets if m["symbol"] in found]

    # -- fetches (ccxt calls, then the normalizers) --------------------------------------

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest]:
        raise NotImplementedError

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate]:
        raise NotImplementedError
