"""Liquidation normalizers: the venues' raw WebSocket messages -> `messages.events.Liquidation`.

Pure functions (no I/O, no ccxt objects), so they are unit-tested on the documented payloads
(samples/*.json) and on garbage. They never raise: each returns the events it could build and
a reason for everything it skipped.

Why raw messages and not ccxt's liquidation structures: ccxt.pro's `watch_liquidations*` resolve
one future per message hash, so with the default `newUpdates=True` a burst of N liquidations
processed in one read reaches the caller as 1 (the others sit in `exchange.liquidations`, a
1000-entry ring that a cascade overruns). `venues/liquidation_stream.py` therefore lets ccxt.pro
own the connection and subscription, and takes every liquidation from the raw message as ccxt
receives it (a hook on the client's `handle_message`), which loses nothing in a burst. It also
keeps the fields ccxt drops (Binance `z`, `q`, `E`).

Conventions (README units registry):

| venue | side in the payload | quantity | price | value |
|---|---|---|---|---|
| Binance `forceOrder` | `S` = side of the *forced order*: SELL -> a LONG was liquidated, BUY -> a SHORT | `z` (filled quantity; falls back to `l`, then `q`) | `ap` (average fill price; falls back to `p`) | `z` x `ap` |
| Bybit `allLiquidation` | `S` = side of the *position*: Buy -> LONG, Sell -> SHORT | `v` | `p` (bankruptcy price) | `v` x `p` |

Binance: `z` x `ap` is what the forced order really executed (`l` is only the last fill, `q` the
order size; ccxt uses `l`, which undercounts an order that took several fills, and `ap` - a
mismatch). Contract size is 1 base unit on both venues' linear perpetuals. `ts_event` is the
venue's liquidation time (`o.T` / `data[].T`), in ns.
"""

import math
from typing import Any, Literal

from venues.base import Market, VenueAdapter
from messages.events import MAX_AMOUNT, Liquidation
from messages.timeunits import MS

# Timestamps in ms that are plausible (2015 .. 2100): anything else is garbage, not a time.
_MIN_MS, _MAX_MS = 1_420_070_400_000, 4_102_444_800_000

Side = Literal["LONG", "SHORT"]
# raw venue symbol (BTCUSDT) -> (ccxt unified symbol, Nautilus instrument id)
SymbolMap = dict[str, tuple[str, str]]


class LiquidationsUnsupported(RuntimeError):
    """The venue has no public liquidation feed (Hyperliquid)."""


UNSUPPORTED: dict[str, str] = {
    "hyperliquid": (
        "Hyperliquid has no public liquidation feed: liquidations appear only in per-user fills "
        "(userFills / userEvents of the liquidated account), so they cannot be streamed for a market. "
        "Liquidations are streamed from Binance and Bybit."
    ),
}


def check_supported(venue: str) -> None:
    """Raise `LiquidationsUnsupported` with a clear message for a venue without a feed."""
    message = UNSUPPORTED.get(venue.lower())
    if message:
        raise LiquidationsUnsupported(message)


def symbol_map(adapter: VenueAdapter, markets: list[Market]) -> SymbolMap:
    return {adapter.raw_symbol(m): (m["symbol"], adapter.instrument_id(m)) for m in markets}


# -- sides -----------------------------------------------------------------------------------


def binance_position_side(order_side: Any) -> Side | None:
    """Binance reports the forced order: SELL closes a long, BUY closes a short."""
    s = str(order_side).upper() if order_side is not None else ""
    return "LONG" if s == "SELL" else "SHORT" if s == "BUY" else None


def bybit_position_side(position_side: Any) -> Side | None:
    """Bybit reports the position: Buy = a long position was liquidated."""
    s = str(position_side).upper() if position_side is not None else ""
    return "LONG" if s == "BUY" else "SHORT" if s == "SELL" else None


# -- numbers ---------------------------------------------------------------------------------


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _ts_ms(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = int(value)
    except (TypeError, ValueError):
        try:
            x = int(float(value))
        except (TypeError, ValueError, OverflowError):
            return None
    return x if _MIN_MS <= x <= _MAX_MS else None


def liquidation_value(quantity: float, price: float) -> float:
    """USD value of a liquidation on a linear (USDT) contract: base quantity x price."""
    return quantity * price


def _event(venue: Literal["BINANCE", "BYBIT"], symbols: SymbolMap, raw_symbol: Any, side: Side | None, qty: float | None,
           price: float | None, ts_ms: int | None, ts_recv: int) -> Liquidation | str:
    if not isinstance(raw_symbol, str) or raw_symbol not in symbols:
        return f"symbol {raw_symbol!r} not watched"
    if side is None:
        return "unknown side"
    if qty is None:
        return "quantity missing or not > 0"
    if price is None:
        return "price missing or not > 0"
    if ts_ms is None:
        return "timestamp missing or implausible"
    if liquidation_value(qty, price) > MAX_AMOUNT:
        return f"value {qty} x {price} beyond any real liquidation (over {MAX_AMOUNT:g})"
    symbol, instrument_id = symbols[raw_symbol]
    return Liquidation(
        venue=venue, symbol=symbol, instrument_id=instrument_id, ts_event=ts_ms * MS, ts_recv=ts_recv,
        side=side, quantity=qty, price=price, value=liquidation_value(qty, price),
    )


# -- Binance ----------------------------------------------------------------------------------


def unwrap_binance(message: Any) -> Any:
    """A combined-stream message is {"stream": name, "data": event}; a raw one is the event."""
    if isinstance(message, dict) and "stream" in message and isinstance(message.get("data"), dict | list):
        return message["data"]
    return message


def binance_force_orders(message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
    """Events of one Binance `forceOrder` message (a single event; a list is accepted too)."""
    message = unwrap_binance(message)
    items = message if isinstance(message, list) else [message]
    out: list[Liquidation] = []
    skipped: list[str] = []
    for item in items:
        if not isinstance(item, dict) or item.get("e") != "forceOrder" or not isinstance(item.get("o"), dict):
            skipped.append("not a forceOrder event")
            continue
        o = item["o"]
        qty = _positive(o.get("z")) or _positive(o.get("l")) or _positive(o.get("q"))
        price = _positive(o.get("ap")) or _positive(o.get("p"))
        ev = _event("BINANCE", symbols, o.get("s"), binance_position_side(o.get("S")), qty, price,
                    _ts_ms(o.get("T", item.get("E"))), ts_recv)
        (out.append(ev) if isinstance(ev, Liquidation) else skipped.append(ev))
    return out, skipped


def is_binance_liquidation(message: Any) -> bool:
    m = unwrap_binance(message)
    return isinstance(m, dict) and m.get("e") == "forceOrder"


def binance_ack(message: Any) -> tuple[bool, str | None] | None:
    """(ok, error) for a reply to SUBSCRIBE ({"result": null, "id": n} / {"error": ...}), else None."""
    if not isinstance(message, dict) or "id" not in message or "e" in message:
        return None
    if message.get("error") is not None:
        return False, str(message["error"])
    if "code" in message and "msg" in message:
        return False, f"{message['code']}: {message['msg']}"
    if "result" in message:
        return True, None
    return None


# -- Bybit ------------------------------------------------------------------------------------


def bybit_all_liquidation(message: Any, symbols: SymbolMap, ts_recv: int) -> tuple[list[Liquidation], list[str]]:
    """Events of one Bybit `allLiquidation.<SYMBOL>` push (every liquidation of a 500 ms window)."""
    if not isinstance(message, dict) or not str(message.get("topic", "")).startswith("allLiquidation."):
        return [], ["not an allLiquidation message"]
    data = message.get("data")
    if not isinstance(data, list):
        return [], ["allLiquidation data is not a list"]
    out: list[Liquidation] = []
    skipped: list[str] = []
    for row in data:
        if not isinstance(row, dict):
            skipped.append("row is not an object")
            continue
        ev = _event("BYBIT", symbols, row.get("s"), bybit_position_side(row.get("S")), _positive(row.get("v")),
                    _positive(row.get("p")), _ts_ms(row.get("T")), ts_recv)
        (out.append(ev) if isinstance(ev, Liquidation) else skipped.append(ev))
    return out, skipped


def is_bybit_liquidation(message: Any) -> bool:
    return isinstance(message, dict) and str(message.get("topic", "")).startswith("allLiquidation.")


def bybit_ack(message: Any) -> tuple[bool, str | None] | None:
    """(ok, error) for a reply to op=subscribe, else None."""
    if not isinstance(message, dict) or message.get("op") != "subscribe" or "success" not in message:
        return None
    return (True, None) if message.get("success") is True else (False, str(message.get("ret_msg") or message))


# -- per venue --------------------------------------------------------------------------------

NORMALIZERS = {"binance": binance_force_orders, "bybit": bybit_all_liquidation}
IS_LIQUIDATION = {"binance": is_binance_liquidation, "bybit": is_bybit_liquidation}
ACKS = {"binance": binance_ack, "bybit": bybit_ack}
