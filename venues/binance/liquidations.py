"""Binance USDT-M liquidations: the `forceOrder` streams, their frames, and what they mean.

Owns everything Binance-specific about liquidations (`BinanceLiquidations`, the adapter's
`liquidations`): the channels (`<symbol>@forceOrder` per symbol through ccxt.pro's
`watch_liquidations_for_symbols`, one SUBSCRIBE and one answer per connection; `!forceOrder@arr`
for every symbol), the typed frames, the subscribe answer, and the 24-hour connection limit.

Conventions (README units registry; Binance docs, Liquidation Order Streams):

- `S` is the side of the *forced order*: SELL -> a LONG position was liquidated, BUY -> a SHORT.
- quantity `z` (accumulated filled quantity; falls back to `l`, the last fill, then `q`, the
  order size, when absent or 0), price `ap` (average fill price; falls back to `p`), value
  `z` x `ap`: what the forced order really executed (ccxt uses `l`, which undercounts an order
  that took several fills, with `ap` - a mismatch). Contract size is 1 base unit.
- `ts_event` is the order's trade time `o.T` (the event time `E` if `T` is absent), in ms.
- Binance pushes at most one liquidation per symbol per second (the venue samples).
"""

from typing import Any, Literal

import msgspec

from messages.events import Liquidation, NonNegative
from venues.liquidations import LiquidationFeed, MillisTs, Side, Subscription, SymbolMap, collect, decoded, liquidation

MAX_CONNECTION_AGE_S = 23.5 * 3600  # Binance drops a connection at 24 h: rotate before


class ForceOrder(msgspec.Struct, frozen=True):
    """The `o` object of a `forceOrder` event (amounts come as decimal strings)."""

    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")  # of the forced order
    filled: NonNegative | None = msgspec.field(name="z", default=None)  # accumulated filled quantity
    last_filled: NonNegative | None = msgspec.field(name="l", default=None)
    quantity: NonNegative | None = msgspec.field(name="q", default=None)  # order size
    average_price: NonNegative | None = msgspec.field(name="ap", default=None)
    price: NonNegative | None = msgspec.field(name="p", default=None)  # the order's limit price
    trade_time: MillisTs | None | msgspec.UnsetType = msgspec.field(name="T", default=msgspec.UNSET)


class ForceOrderEvent(msgspec.Struct, frozen=True):
    """One `forceOrder` event: `{"e": "forceOrder", "E": ms, "o": {...}}`."""

    kind: Literal["forceOrder"] = msgspec.field(name="e")  # required (a tag would be optional here)
    order: ForceOrder = msgspec.field(name="o")
    event_time: MillisTs | None = msgspec.field(name="E", default=None)


class CombinedStreamFrame(msgspec.Struct, frozen=True):
    """A combined-stream frame wraps the event: `{"stream": "btcusdt@forceOrder", "data": event}`."""

    stream: Any
    data: dict | list


class SubscribeAnswer(msgspec.Struct, frozen=True):
    """The answer to SUBSCRIBE: `{"result": null, "id": n}`, or an error (`error` / `code`+`msg`)."""

    id: int | str
    result: Any = msgspec.UNSET  # null for SUBSCRIBE
    error: dict | str | None = None
    code: int | msgspec.UnsetType = msgspec.UNSET
    msg: str | msgspec.UnsetType = msgspec.UNSET


def position_side(order_side: Any) -> Side | None:
    """Binance reports the forced order: SELL closes a long, BUY closes a short."""
    s = str(order_side).upper() if order_side is not None else ""
    return "LONG" if s == "SELL" else "SHORT" if s == "BUY" else None


def unwrap(message: Any) -> Any:
    """The event of a combined-stream frame; a raw frame is the event itself."""
    frame = decoded(message, CombinedStreamFrame) if isinstance(message, dict) and "stream" in message else None
    return frame.data if isinstance(frame, CombinedStreamFrame) else message


def force_order(item: Any, symbols: SymbolMap, ts_recv: int) -> Liquidation | str:
    """One event of a forceOrder frame as a Liquidation, or why it is skipped."""
    event = decoded(item, ForceOrderEvent)
    if isinstance(event, str):
        return f"not a forceOrder event: {event}"
    o = event.order
    ts_ms = event.event_time if o.trade_time is msgspec.UNSET else o.trade_time  # E only if T is absent
    return liquidation("BINANCE", symbols, o.symbol, position_side(o.side), o.filled or o.last_filled or o.quantity,
                       o.average_price or o.price, ts_ms, ts_recv)


def force_orders(message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
    """Events of one Binance `forceOrder` frame (a single event; a list is accepted too)."""
    message = unwrap(message)
    return collect([force_order(item, symbols, ts_recv) for item in (message if isinstance(message, list) else [message])])


def is_force_order(message: Any) -> bool:
    event = unwrap(message)
    return isinstance(event, dict) and event.get("e") == "forceOrder"


def subscribe_answer(message: Any) -> tuple[bool, str | None] | None:
    """(ok, error) for an answer to SUBSCRIBE, else None."""
    if not isinstance(message, dict) or "e" in message:  # an event, not an answer
        return None
    answer = decoded(message, SubscribeAnswer)
    if isinstance(answer, str):
        return None
    if answer.error is not None:
        return False, str(answer.error)
    if answer.code is not msgspec.UNSET and answer.msg is not msgspec.UNSET:
        return False, f"{answer.code}: {answer.msg}"
    if answer.result is not msgspec.UNSET:
        return True, None
    return None


class BinanceLiquidations(LiquidationFeed):
    """Binance's feed: one SUBSCRIBE of every symbol's `<symbol>@forceOrder` (or `!forceOrder@arr`)."""

    max_connection_age_s = MAX_CONNECTION_AGE_S
    all_symbols_stream = "!forceOrder@arr"

    def subscriptions(self, exchange: Any, symbols: list[str], all_symbols: bool) -> list[Subscription]:
        # one connection, one SUBSCRIBE for all symbols; [] makes ccxt.pro ask for !forceOrder@arr
        return [lambda: exchange.watch_liquidations_for_symbols([] if all_symbols else symbols)]

    def is_liquidation(self, message: Any) -> bool:
        return is_force_order(message)

    def liquidations(self, message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
        return force_orders(message, symbols, ts_recv)

    def answer(self, message: Any) -> tuple[bool, str | None] | None:
        return subscribe_answer(message)
