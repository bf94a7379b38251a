"""The stored `ts_init` of an event: the catalog's natural key with the instrument id.

OI and funding rows: `ts_event`. Liquidations and gaps: `ts_event` plus a sub-millisecond offset,
so that distinct rows of one millisecond keep distinct keys and a re-sent row the same key.
"""

import hashlib

from messages.events import AnyEvent, Gap, Liquidation


def liquidation_ts_init(e: Liquidation) -> int:
    """The stored `ts_init` of a liquidation: `ts_event` + a sub-millisecond offset.

    The catalog's natural key is (instrument_id, ts_init) (`storage.files.merge_tables`), but a
    cascade has several liquidations in one venue millisecond. The offset (0..999_999 ns) is a
    stable hash of (side, price, quantity), so distinct liquidations of one millisecond get
    distinct keys, a re-sent liquidation gets the same key (idempotent), and rows stay in event
    order at ms precision. Two different liquidations can still hash alike (1 in 10^6 per pair
    in one ms: at 2,000/s about once in half an hour, found by the soak): this is only the first
    slot tried; `next_slot` gives the others (linear probing, in `group_events` and against the
    stored rows in `storage.files.place_distinct`).
    """
    return liquidation_row_slot({"ts_event": e.ts_event, "side": e.side, "price": e.price, "quantity": e.quantity})


def liquidation_row_slot(row: dict) -> int:
    """`liquidation_ts_init` of a stored row (a dict of LIQUIDATION_SCHEMA's columns)."""
    return row["ts_event"] + _sub_ms_offset(f"{row['side']}|{row['price']!r}|{row['quantity']!r}")


def next_slot(ts_init: int) -> int:
    """The next ts_init to try for a liquidation whose slot holds another: +1 ns, inside its ms."""
    return ts_init - ts_init % 1_000_000 + (ts_init + 1) % 1_000_000


def liquidation_content(e: Liquidation) -> tuple:
    """What makes two liquidations of one instrument the same (the columns besides the keys)."""
    return (e.side, e.quantity, e.price, e.value, e.ts_event)


def _sub_ms_offset(text: str) -> int:
    """A stable 0..999_999 ns offset from `text` (keeps distinct rows of one ms distinct)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % 1_000_000


def ts_init_of(e: AnyEvent) -> int:
    """The stored `ts_init` (the catalog's natural key with the instrument id) of an event."""
    if type(e) is Liquidation:
        return liquidation_ts_init(e)
    if type(e) is Gap:  # gaps of different streams may start in the same ms
        return e.ts_event + _sub_ms_offset(e.stream)
    return e.ts_event
