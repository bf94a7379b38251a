"""What every venue's liquidation feed shares: the feed interface, the symbol map, the event builder.

Owns the venue-neutral half of liquidations. Each venue's half - its channel, subscribe answer,
frame types and conventions - lives in `venues/<venue>/liquidations.py` as a `LiquidationFeed`
(the adapter's `liquidations` attribute); `venues/liquidation_stream.py` drives any feed through
this interface and never asks which venue it is.

Why raw frames and not ccxt's liquidation structures: ccxt.pro's `watch_liquidations*` resolve
one future per message hash, so with the default `newUpdates=True` a burst of N liquidations
processed in one read reaches the caller as 1 (the others sit in `exchange.liquidations`, a
1000-entry ring that a cascade overruns). The stream therefore lets ccxt.pro own the connection
and subscription and takes every liquidation from the raw frame as ccxt receives it, which loses
nothing in a burst and keeps the fields ccxt drops (Binance `z`, `q`, `E`).

A feed's parsers are pure (no I/O, no ccxt objects) and never raise: each frame becomes the
events it holds and a reason for every row it skipped. Frames are decoded into frozen msgspec
Structs (one per frame, in the venue's module) with `msgspec.convert`; the constraints here
(`MillisTs`, and `messages.events`' amount bounds) refuse what is not a real liquidation.
"""

import re
import reprlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import msgspec

from messages.events import MAX_AMOUNT, Liquidation, Venue
from messages.timeunits import MS

# Venue times in ms that are plausible (2015 .. 2100): anything else is garbage, not a time.
MillisTs = Annotated[int, msgspec.Meta(ge=1_420_070_400_000, le=4_102_444_800_000)]

Side = Literal["LONG", "SHORT"]
# raw venue symbol (BTCUSDT) -> (ccxt unified symbol, Nautilus instrument id)
SymbolMap = dict[str, tuple[str, str]]
# One subscription: awaiting it keeps ccxt.pro's watch pending (it dials, subscribes, pings).
Subscription = Callable[[], Awaitable[Any]]


class LiquidationsUnsupported(RuntimeError):
    """The venue has no public liquidation feed (or not the one asked for)."""


class LiquidationFeed:
    """How one venue streams liquidations through a ccxt.pro client.

    A venue module subclasses it and implements the four methods; it sets
    `max_connection_age_s` if the venue closes connections at an age, `all_symbols_stream` if it
    has one channel for every symbol. A venue without a feed subclasses `NoLiquidationFeed`.
    """

    supported = True
    max_connection_age_s: float | None = None  # the venue drops a connection at this age
    all_symbols_stream: str | None = None  # the channel of every symbol's liquidations, if any

    def require(self) -> None:
        """Raise `LiquidationsUnsupported`, with the venue's reason, if it has no feed."""

    def subscriptions(self, exchange: Any, symbols: list[str], all_symbols: bool) -> list[Subscription]:
        """The ccxt.pro watches of one connection; the venue acknowledges each one once."""
        raise NotImplementedError

    def connection_groups(self, raw_symbols: list[str]) -> list[list[str]]:
        """The symbols split into groups, one connection each, as the venue's per-connection
        limits require (default: one connection for all)."""
        return [list(raw_symbols)] if raw_symbols else []

    def is_liquidation(self, message: Any) -> bool:
        """A liquidation frame (taken whole by the stream; never handed on to ccxt)."""
        raise NotImplementedError

    def liquidations(self, message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
        """The events of one liquidation frame and a reason for each row skipped (never raises)."""
        raise NotImplementedError

    def answer(self, message: Any) -> tuple[bool, str | None] | None:
        """(ok, error) if the frame answers a subscribe request, else None."""
        raise NotImplementedError


class NoLiquidationFeed(LiquidationFeed):
    """A venue without a public liquidation feed: asking for one raises with `reason`."""

    supported = False
    reason: str

    def require(self) -> None:
        raise LiquidationsUnsupported(self.reason)


def symbol_map(adapter: Any, markets: list[dict]) -> SymbolMap:
    """Raw venue symbol -> (ccxt symbol, instrument id) of the watched markets (`adapter`: a VenueAdapter)."""
    return {adapter.raw_symbol(m): (m["symbol"], adapter.instrument_id(m)) for m in markets}


def liquidation_value(quantity: float, price: float) -> float:
    """USD value of a liquidation on a linear (USDT) contract: base quantity x price."""
    return quantity * price


def liquidation(venue: Venue, symbols: SymbolMap, raw_symbol: str, side: Side | None, quantity: float | None,
                price: float | None, ts_ms: int | None, ts_recv: int) -> Liquidation | str:
    """The event of one decoded row, or why it is skipped (not watched, no side, nothing > 0, ...)."""
    if raw_symbol not in symbols:
        return f"symbol {raw_symbol!r} not watched"
    if side is None:
        return "unknown side"
    if not quantity:
        return "quantity missing or not > 0"
    if not price:
        return "price missing or not > 0"
    if ts_ms is None:
        return "timestamp missing or implausible"
    value = liquidation_value(quantity, price)
    if value > MAX_AMOUNT:
        return f"value {quantity} x {price} beyond any real liquidation (over {MAX_AMOUNT:g})"
    if not value > 0:  # both tiny: the product underflows to 0
        return f"value {quantity} x {price} is not > 0"
    symbol, instrument_id = symbols[raw_symbol]
    return Liquidation(
        venue=venue, symbol=symbol, instrument_id=instrument_id, ts_event=ts_ms * MS, ts_recv=ts_recv,
        side=side, quantity=quantity, price=price, value=value,
    )


def decoded[T](raw: Any, frame: type[T]) -> T | str:
    """`raw` (a frame as ccxt parsed it from JSON) as the typed `frame`, or why not: msgspec's
    reason (what was expected, at which field) and the value sent there. Lax: venues send numbers
    as decimal strings."""
    try:
        return msgspec.convert(raw, frame, strict=False)
    except msgspec.ValidationError as exc:
        reason = str(exc)
    return f"{reason}; sent: {reprlib.repr(_at(raw, reason))}"


def _at(raw: Any, reason: str) -> Any:
    """The value at the path msgspec's `reason` names ("... - at `$.o.z`"), else all of `raw`."""
    where = _PATH.search(reason)
    value = raw
    try:
        for name, index in _STEP.findall(where.group(1) if where else ""):
            value = value[int(index)] if index else value[name]
    except (LookupError, TypeError):
        return raw
    return value


_PATH = re.compile(r" - at `\$((?:\.\w+|\[\d+\])*)`$")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def collect(results: list[Liquidation | str]) -> tuple[list[Liquidation], list[str]]:
    """Split per-row results into (events, skip reasons)."""
    events = [r for r in results if isinstance(r, Liquidation)]
    return events, [r for r in results if not isinstance(r, Liquidation)]
