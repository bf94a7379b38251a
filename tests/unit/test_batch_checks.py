"""The validator's one-call path for a whole batch (`decode_clean`) refuses exactly the batches
in which the event-by-event path (`validate_payload` + `refuse_sender`) refuses an event, and
gives the same events for the others: every rule, every kind of sender."""

import math

import msgspec
import pytest

from actors.validator import decode_clean, refuse_sender, validate_payload
from messages.codec import encode
from messages.envelope import Batch
from messages.events import FundingRate, Gap, Instrument, Liquidation, Malformed, OpenInterest

NOW = 1_750_000_000_000_000_000
MESH = {"binance", "bybit"}  # the topology's venues
SOURCES = ["collector.binance", "collector.bybit", "collector.hyperliquid", "cli.history.binance.42",
           "cli.history.bybit.42", "cli.history.42", "somebody"]
COMMON = dict(symbol="BTC/USDT:USDT", ts_event=NOW, ts_recv=NOW)


def oi(venue="BINANCE", iid="BTCUSDT-PERP.BINANCE", **changes):
    return OpenInterest(venue=venue, instrument_id=iid, **{**COMMON, "open_interest": 1.0, "open_interest_value": 2.0, **changes})


def candidates() -> list:
    """Good events of every kind for two venues, and events each rule refuses."""
    funding = dict(venue="BINANCE", instrument_id="BTCUSDT-PERP.BINANCE", rate=0.0001, interval_minutes=480, **COMMON)
    gap = dict(venue="BINANCE", instrument_id="BTCUSDT-PERP.BINANCE", end_ns=NOW, reason="restart", **COMMON)
    return [
        oi(), oi("BYBIT", "BTCUSDT-LINEAR.BYBIT"), oi(source="history", period_s=300),
        FundingRate(**funding), FundingRate(**funding, settled=True),
        Instrument(venue="BINANCE", instrument_id="BTCUSDT-PERP.BINANCE", raw_symbol="BTCUSDT", base="BTC", quote="USDT",
                   settle="USDT", price_precision=1, size_precision=3, price_increment="0.1", size_increment="0.001", **COMMON),
        Liquidation(venue="BYBIT", instrument_id="BTCUSDT-LINEAR.BYBIT", side="LONG", quantity=1.0, price=2.0, value=2.0, **COMMON),
        Gap(stream="open_interest", **gap), Gap(stream="liquidations", **gap),
        # refused: by a constraint, by a check, by the sender rules
        oi(open_interest=math.nan), oi(open_interest=-1.0), oi(iid="BTC/USDT-PERP.BINANCE"), oi(symbol=""),
        oi(ts_event=NOW + 3600 * 10**9), oi(ts_recv=NOW + 3600 * 10**9), oi(iid="BTCUSDT-LINEAR.BYBIT"),
        oi("HYPERLIQUID", "BTC-USD-PERP.HYPERLIQUID"),
        Gap(stream="open_interest", **{**gap, "end_ns": NOW - 1}),
        Malformed(venue="BINANCE", instrument_id="BTCUSDT-PERP.BINANCE", reason="no openInterest", **COMMON),
    ]


def one_by_one_passes(source: str, payload: bytes) -> bool:
    event, reason = validate_payload(payload, NOW)
    return event is not None and refuse_sender(source, event, MESH) is None


def batch(source: str, payloads: list[bytes]) -> bytes:
    return encode(Batch(source=source, epoch=1, seq=1, events=[msgspec.Raw(p) for p in payloads]))


@pytest.mark.parametrize("source", SOURCES)
def test_a_batch_passes_whole_exactly_when_every_event_passes_one_by_one(source):
    payloads = [encode(e) for e in candidates()]
    payloads += [encode({**msgspec.to_builtins(oi()), "period_s": 300}), b"\xc1not msgpack"]  # a poll with a period; garbage
    good = [p for p in payloads if one_by_one_passes(source, p)]
    for p in payloads:  # each alone, and between two good neighbours
        for around in ([p], good[:1] + [p] + good[-1:]):
            expected = all(one_by_one_passes(source, q) for q in around)
            events = decode_clean(batch(source, around), source, MESH, NOW)
            assert (events is not None) == expected, (source, msgspec.msgpack.decode(p) if p[0] != 0xc1 else p)
            if expected:
                assert events == [validate_payload(q, NOW)[0] for q in around]
    if good:  # all the good ones of this sender together
        assert decode_clean(batch(source, good), source, MESH, NOW) == [validate_payload(q, NOW)[0] for q in good]
