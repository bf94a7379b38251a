"""Bybit linear liquidations: the `allLiquidation` topic, its frames, and what they mean.

Owns everything Bybit-specific about liquidations (`BybitLiquidations`, the adapter's
`liquidations`): the channel (`allLiquidation.<SYMBOL>`, one ccxt.pro `watch_liquidations` and
one `op: subscribe` answer per symbol; there is no all-symbols topic), the typed frames and
the op answer.

Conventions (README units registry; Bybit docs, v5 websocket public all-liquidation):

- `S` is the side of the *position*: "When you receive a Buy update, this means that a long
  position has been liquidated": Buy -> LONG, Sell -> SHORT.
- quantity `v` (base units), price `p` (bankruptcy price), value `v` x `p`; contract size 1.
- `ts_event` is the row's time `T` (ms). Every liquidation is pushed, batched every 500 ms.
"""

from typing import Any

import msgspec

from messages.events import Liquidation, Positive
from venues.liquidations import LiquidationFeed, MillisTs, Side, Subscription, SymbolMap, collect, decoded, liquidation

TOPIC = "allLiquidation."


class AllLiquidation(msgspec.Struct, frozen=True):
    """One `allLiquidation.<SYMBOL>` push: `{"topic", "type", "ts", "data": [row, ...]}`.

    Rows stay undecoded here: each is decoded on its own, so one bad row costs only itself."""

    topic: str
    data: list[Any]


class AllLiquidationItem(msgspec.Struct, frozen=True):
    """One liquidation of a push (amounts come as decimal strings)."""

    time_ms: MillisTs = msgspec.field(name="T")
    symbol: str = msgspec.field(name="s")
    side: str = msgspec.field(name="S")  # of the position
    size: Positive = msgspec.field(name="v")
    price: Positive = msgspec.field(name="p")  # bankruptcy price


class OpAnswer(msgspec.Struct, frozen=True):
    """The answer to a request: `{"success": true, "ret_msg": "", "op": "subscribe", ...}`."""

    op: str
    success: bool
    ret_msg: str = ""


def position_side(position_side: Any) -> Side | None:
    """Bybit reports the position: Buy = a long position was liquidated."""
    s = str(position_side).upper() if position_side is not None else ""
    return "LONG" if s == "BUY" else "SHORT" if s == "SELL" else None


def row(raw: Any, symbols: SymbolMap, ts_recv: int) -> Liquidation | str:
    item = decoded(raw, AllLiquidationItem)
    if isinstance(item, str):
        return f"row: {item}"
    return liquidation("BYBIT", symbols, item.symbol, position_side(item.side), item.size, item.price, item.time_ms, ts_recv)


def all_liquidation(message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
    """Events of one Bybit `allLiquidation.<SYMBOL>` push (every liquidation of a 500 ms window)."""
    push = decoded(message, AllLiquidation)
    if isinstance(push, str):
        return [], [f"not an allLiquidation message: {push}"]
    if not push.topic.startswith(TOPIC):
        return [], [f"not an allLiquidation message: topic {push.topic!r}"]
    return collect([row(raw, symbols, ts_recv) for raw in push.data])


def is_all_liquidation(message: Any) -> bool:
    return isinstance(message, dict) and str(message.get("topic", "")).startswith(TOPIC)


def op_answer(message: Any) -> tuple[bool, str | None] | None:
    """(ok, error) for an answer to op=subscribe, else None (pongs and other answers)."""
    answer = decoded(message, OpAnswer)
    if isinstance(answer, str) or answer.op != "subscribe":
        return None
    return (True, None) if answer.success else (False, str(answer.ret_msg or message))


class BybitLiquidations(LiquidationFeed):
    """Bybit's feed: one `allLiquidation.<SYMBOL>` subscription per symbol, no all-symbols topic."""

    def subscriptions(self, exchange: Any, symbols: list[str], all_symbols: bool) -> list[Subscription]:
        # one subscribe (and one answer) per symbol, all on the same connection
        return [lambda s=s: exchange.watch_liquidations(s) for s in symbols]

    def is_liquidation(self, message: Any) -> bool:
        return is_all_liquidation(message)

    def liquidations(self, message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
        return all_liquidation(message, symbols, ts_recv)

    def answer(self, message: Any) -> tuple[bool, str | None] | None:
        return op_answer(message)
