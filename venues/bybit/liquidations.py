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

Limits (bybit-exchange/docs, v5 WebSocket "Connect"): a subscribe request carries at most
ARGS_PER_REQUEST topics (the documented figure is for spot; linear states none, so the stricter
one is kept), and the args of one connection stay within ARGS_CHARS_PER_CONNECTION characters. A
connection also carries at most TOPICS_PER_CONNECTION topics (not a documented figure: it splits a
cascade's frames over several sockets); `connection_groups` splits the symbols accordingly.
"""

from typing import Any

import msgspec

from messages.events import Liquidation, Positive
from venues.liquidations import LiquidationFeed, MillisTs, Side, Subscription, SymbolMap, collect, decoded, liquidation

TOPIC = "allLiquidation."
ARGS_PER_REQUEST = 10
ARGS_CHARS_PER_CONNECTION = 21_000
TOPICS_PER_CONNECTION = 200


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


async def subscribe(exchange: Any, symbols: list[str]) -> Any:
    """One subscribe request for the `allLiquidation` topics of these ccxt symbols (ccxt.pro's
    `watch_liquidations` sends one per symbol); awaiting it keeps the watch pending."""
    if exchange.markets is None:
        await exchange.load_markets()
    url = await exchange.get_url_by_market_type(symbols[0], False, "watchLiquidations", {})
    hashes = [f"liquidations::{s}" for s in symbols]  # ccxt.pro's own message hashes
    return await exchange.watch_topics(url, hashes, [TOPIC + exchange.market(s)["id"] for s in symbols], {})


def is_all_liquidation(message: Any) -> bool:
    return isinstance(message, dict) and str(message.get("topic", "")).startswith(TOPIC)


def op_answer(message: Any) -> tuple[bool, str | None] | None:
    """(ok, error) for an answer to op=subscribe, else None (pongs and other answers)."""
    answer = decoded(message, OpAnswer)
    if isinstance(answer, str) or answer.op != "subscribe":
        return None
    return (True, None) if answer.success else (False, str(answer.ret_msg or message))


def topics_length(raw_symbols: list[str]) -> int:
    """Characters of the args of these symbols' topics, as JSON strings with their separators."""
    return sum(len(TOPIC) + len(s) + 3 for s in raw_symbols)


class BybitLiquidations(LiquidationFeed):
    """Bybit's feed: `allLiquidation.<SYMBOL>` of every symbol, no all-symbols topic; subscribed
    ARGS_PER_REQUEST topics a request, on as many connections as its limits require."""

    def subscriptions(self, exchange: Any, symbols: list[str], all_symbols: bool) -> list[Subscription]:
        # one subscribe request (and one answer) per chunk of symbols
        chunks = [symbols[i:i + ARGS_PER_REQUEST] for i in range(0, len(symbols), ARGS_PER_REQUEST)]
        return [lambda chunk=chunk: subscribe(exchange, chunk) for chunk in chunks]

    def connection_groups(self, raw_symbols: list[str]) -> list[list[str]]:
        groups: list[list[str]] = []
        for raw in raw_symbols:
            if not groups or len(groups[-1]) >= TOPICS_PER_CONNECTION or \
                    topics_length(groups[-1] + [raw]) > ARGS_CHARS_PER_CONNECTION:
                groups.append([])
            groups[-1].append(raw)
        return groups

    def is_liquidation(self, message: Any) -> bool:
        return is_all_liquidation(message)

    def liquidations(self, message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
        return all_liquidation(message, symbols, ts_recv)

    def answer(self, message: Any) -> tuple[bool, str | None] | None:
        return op_answer(message)
