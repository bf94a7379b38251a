"""Liquidations: side conventions, values, garbage, de-duplication, catalog key (no network)."""

import asyncio
import random

import msgspec
import pytest

from storage.batches import build_tables
from storage.schema import LIQUIDATION
from storage.slots import liquidation_ts_init
from storage.store import CatalogStore
from venues import adapter
from venues.base import backoff_delay
from venues.binance.liquidations import force_orders as binance_force_orders
from venues.binance.liquidations import position_side as binance_position_side
from venues.binance.liquidations import subscribe_answer as binance_ack
from venues.bybit.liquidations import all_liquidation as bybit_all_liquidation
from venues.bybit.liquidations import op_answer as bybit_ack
from venues.bybit.liquidations import position_side as bybit_position_side
from venues.liquidation_delivery import DedupWindow, liquidation_key
from venues.liquidation_stream import LiquidationStream, LiquidationsUnsupported, StreamScope
from venues.liquidations import liquidation_value
from messages.codec import decode_event, encode
from messages.events import Liquidation

TS_RECV = 1_739_502_303_300_000_000
BIN = {"BTCUSDT": ("BTC/USDT:USDT", "BTCUSDT-PERP.BINANCE")}
BYB = {"BTCUSDT": ("BTC/USDT:USDT", "BTCUSDT-LINEAR.BYBIT"), "ROSEUSDT": ("ROSE/USDT:USDT", "ROSEUSDT-LINEAR.BYBIT")}

# ccxt 4.5.90 pro/binance.py handle_liquidation() docstring (a real capture, Nov 2023)
BINANCE_CCXT = {"e": "forceOrder", "E": 1698871323061, "o": {
    "s": "BTCUSDT", "S": "BUY", "o": "LIMIT", "f": "IOC", "q": "1.437", "p": "35100.81", "ap": "34959.70",
    "X": "FILLED", "l": "1.437", "z": "1.437", "T": 1698871323059}}
# nautilus test data (Binance docs example)
BINANCE_DOCS = {"e": "forceOrder", "E": 1568014460893, "o": {
    "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910.00000000", "ap": "9910.12345678",
    "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893}}
# nautilus ws_all_liquidation.json (Bybit docs example with BTC values)
BYBIT_NAUTILUS = {"topic": "allLiquidation.BTCUSDT", "type": "snapshot", "ts": 1739502303204, "data": [
    {"T": 1739502302929, "s": "BTCUSDT", "S": "Buy", "v": "0.015", "p": "96250.5"},
    {"T": 1739502303011, "s": "BTCUSDT", "S": "Sell", "v": "1.250", "p": "97410.0"}]}


def test_side_conventions_are_opposite():
    # Binance: the forced order's side; SELL closes a long.
    assert binance_position_side("SELL") == "LONG" and binance_position_side("BUY") == "SHORT"
    assert binance_position_side("sell") == "LONG"  # ccxt lower-cases
    # Bybit: the position's side; Buy = a long was liquidated.
    assert bybit_position_side("Buy") == "LONG" and bybit_position_side("Sell") == "SHORT"
    assert binance_position_side("HOLD") is None and bybit_position_side(None) is None


def test_binance_sample_payloads():
    (ev,), skipped = binance_force_orders(BINANCE_CCXT, BIN, TS_RECV)
    assert not skipped
    assert ev.side == "SHORT"  # BUY forced order = a short was liquidated
    assert ev.quantity == 1.437 and ev.price == 34959.70  # z at ap (not p, the limit price)
    assert ev.value == pytest.approx(1.437 * 34959.70)
    assert ev.ts_event == 1698871323059 * 1_000_000 and ev.ts_recv == TS_RECV
    assert (ev.venue, ev.symbol, ev.instrument_id) == ("BINANCE", "BTC/USDT:USDT", "BTCUSDT-PERP.BINANCE")
    (ev,), _ = binance_force_orders(BINANCE_DOCS, BIN, TS_RECV)
    assert ev.side == "LONG" and ev.price == 9910.12345678
    # combined-stream wrapper
    (ev2,), _ = binance_force_orders({"stream": "btcusdt@forceOrder", "data": BINANCE_DOCS}, BIN, TS_RECV)
    assert ev2 == ev


def test_binance_uses_filled_quantity_not_last_fill():
    msg = msgspec.json.decode(msgspec.json.encode(BINANCE_CCXT))
    msg["o"].update(q="3.000", z="3.000", l="0.500", ap="35000.0")
    (ev,), _ = binance_force_orders(msg, BIN, TS_RECV)
    assert ev.quantity == 3.0 and ev.value == 3.0 * 35000.0
    msg["o"].update(z="0")  # no accumulated fill reported: fall back to the last fill
    (ev,), _ = binance_force_orders(msg, BIN, TS_RECV)
    assert ev.quantity == 0.5


def test_a_value_that_underflows_to_zero_is_skipped_with_the_reason():
    msg = msgspec.json.decode(msgspec.json.encode(BINANCE_CCXT))
    msg["o"].update(q="1e-200", z="1e-200", l="1e-200", ap="1e-200", p="1e-200")  # both > 0, the product is 0.0
    events, skipped = binance_force_orders(msg, BIN, TS_RECV)
    assert events == [] and len(skipped) == 1 and "not > 0" in skipped[0]


def test_bybit_sample_payload_batches_every_row():
    events, skipped = bybit_all_liquidation(BYBIT_NAUTILUS, BYB, TS_RECV)
    assert not skipped and [e.side for e in events] == ["LONG", "SHORT"]
    assert [(e.quantity, e.price) for e in events] == [(0.015, 96250.5), (1.25, 97410.0)]
    assert events[1].value == pytest.approx(1.25 * 97410.0) == liquidation_value(1.25, 97410.0)
    assert events[0].instrument_id == "BTCUSDT-LINEAR.BYBIT" and events[0].ts_event == 1739502302929 * 1_000_000


def test_binance_documented_fallbacks_and_event_time():
    frame = {"e": "forceOrder", "E": 1698871323061, "o": {"s": "BTCUSDT", "S": "SELL", "q": "2.0", "p": "35100.0",
                                                          "T": 1698871323059}}
    (ev,), _ = binance_force_orders(frame, BIN, TS_RECV)  # neither z nor l, nor ap: q at p
    assert (ev.quantity, ev.price, ev.ts_event) == (2.0, 35100.0, 1698871323059 * 1_000_000)
    frame["o"].update(l="0.5", ap="0")  # ap 0 (nothing filled yet): the limit price
    (ev,), _ = binance_force_orders(frame, BIN, TS_RECV)
    assert (ev.quantity, ev.price) == (0.5, 35100.0)
    del frame["o"]["T"]  # no trade time: the event time
    (ev,), _ = binance_force_orders(frame, BIN, TS_RECV)
    assert ev.ts_event == 1698871323061 * 1_000_000
    frame["o"]["T"] = None  # a trade time that is there but empty is no time
    assert binance_force_orders(frame, BIN, TS_RECV) == ([], ["timestamp missing or implausible"])


def test_a_malformed_field_is_skipped_with_the_field_and_the_value_sent():
    msg = msgspec.json.decode(msgspec.json.encode(BINANCE_CCXT))
    msg["o"]["z"] = "abc"
    events, [reason] = binance_force_orders(msg, BIN, TS_RECV)
    assert events == [] and "`$.o.z`" in reason and "'abc'" in reason
    bad = {"T": 1739502302950, "s": "BTCUSDT", "S": "Buy", "v": "-0.5", "p": "96250.5"}
    push = {**BYBIT_NAUTILUS, "data": [BYBIT_NAUTILUS["data"][0], bad, BYBIT_NAUTILUS["data"][1]]}
    events, [reason] = bybit_all_liquidation(push, BYB, TS_RECV)
    assert len(events) == 2 and "`$.v`" in reason and "'-0.5'" in reason  # one bad row costs only itself


def test_shared_liquidation_code_never_names_a_venue():
    """Venue specifics live in venues/<venue>/liquidations.py: the shared modules' code (docstrings
    and comments aside) names no venue, so a new venue touches none of them."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shared = [*sorted((root / "venues").glob("liquidation*.py")), root / "actors" / "collector_liquidations.py"]
    assert len(shared) >= 6
    for path in shared:
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        words = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)]
        words += [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
        words += [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                  and id(n) not in docstrings]
        named = [w for w in words if any(v in w.lower() for v in ("binance", "bybit", "hyperliquid"))]
        assert named == [], f"{path.name} names a venue: {named}"


def test_acks():
    assert binance_ack({"result": None, "id": 3}) == (True, None)
    assert binance_ack({"error": {"code": 2, "msg": "Invalid request"}, "id": 3})[0] is False
    assert binance_ack(BINANCE_DOCS) is None
    assert bybit_ack({"success": True, "ret_msg": "", "conn_id": "x", "req_id": "1", "op": "subscribe"}) == (True, None)
    assert bybit_ack({"success": False, "ret_msg": "error:handler not found", "op": "subscribe"})[0] is False
    assert bybit_ack({"success": True, "ret_msg": "pong", "op": "ping"}) is None


GARBAGE = [None, 1, "x", [], {}, [None], {"e": "forceOrder"}, {"e": "forceOrder", "o": "x"},
           {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "z": "NaN", "ap": "1", "T": 1698871323059}},
           {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "z": "-1", "ap": "1", "T": 1698871323059}},
           {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "z": "1", "ap": "inf", "T": 1698871323059}},
           {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "z": True, "ap": "1", "T": 1698871323059}},
           {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "z": "1", "ap": "1", "T": 1698871323}},  # seconds
           {"e": "forceOrder", "o": {"s": "ETHUSDT", "S": "SELL", "z": "1", "ap": "1", "T": 1698871323059}},
           {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "X", "z": "1", "ap": "1", "T": 1698871323059}},
           {"topic": "allLiquidation.BTCUSDT", "data": "x"}, {"topic": "allLiquidation.BTCUSDT", "data": [1, None, {}]},
           {"topic": "allLiquidation.BTCUSDT", "data": [{"T": "soon", "s": "BTCUSDT", "S": "Buy", "v": "1", "p": "1"}]},
           {"topic": "allLiquidation.BTCUSDT", "data": [{"T": 1739502302929, "s": "BTCUSDT", "S": "Buy", "v": "0", "p": "1"}]}]


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(7 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() * 1e6 - 5e5
    if kind == 2:
        return "".join(rng.choice("abcSELLBUY0.9") for _ in range(5))
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return rng.randint(-10**15, 10**15)
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(3)]
    keys = ["e", "o", "s", "S", "z", "l", "q", "ap", "p", "T", "v", "data", "topic"]
    return {k: _random_json(rng, depth + 1) for k in keys[: rng.randint(0, len(keys))]}


def test_normalizers_never_raise_on_garbage():
    rng = random.Random(1)
    samples = GARBAGE + [_random_json(rng) for _ in range(3000)]
    for msg in samples:
        for fn, syms in ((binance_force_orders, BIN), (bybit_all_liquidation, BYB)):
            events, skipped = fn(msg, syms, TS_RECV)
            assert isinstance(events, list) and isinstance(skipped, list)
            for e in events:  # whatever got through passes the validator's typed decoder
                decode_event(encode(e))
    for msg in GARBAGE[2:]:
        assert binance_force_orders(msg, BIN, TS_RECV)[0] == [] and bybit_all_liquidation(msg, BYB, TS_RECV)[0] == []


def _liq(ts_ms=1_739_502_302_929, side="LONG", qty=0.015, price=96250.5, iid="BTCUSDT-LINEAR.BYBIT") -> Liquidation:
    return Liquidation(venue=iid.rsplit(".", 1)[1], symbol="BTC/USDT:USDT", instrument_id=iid, ts_event=ts_ms * 1_000_000,
                       ts_recv=TS_RECV, side=side, quantity=qty, price=price, value=qty * price)


def test_validator_decoder_enforces_liquidation_constraints():
    good = _liq()
    assert decode_event(encode(good)) == good
    for bad in (msgspec.structs.replace(good, quantity=0.0), msgspec.structs.replace(good, price=-1.0)):
        with pytest.raises(msgspec.ValidationError):
            decode_event(encode(bad))
    raw = msgspec.msgpack.decode(encode(good))
    raw["side"] = "BUY"  # a venue's raw side never passes
    with pytest.raises(msgspec.ValidationError):
        decode_event(msgspec.msgpack.encode(raw))


def test_dedup_window_drops_only_what_another_connection_delivered():
    d = DedupWindow(window_ns=60 * 10**9)
    a, b = _liq(), _liq(qty=0.016)
    assert d.admit(liquidation_key(a), a.ts_event, conn_id=1)
    assert d.admit(liquidation_key(a), a.ts_event, conn_id=1)  # a genuine repeat on one connection
    assert not d.admit(liquidation_key(a), a.ts_event, conn_id=2)  # the overlap connection's copies
    assert not d.admit(liquidation_key(a), a.ts_event, conn_id=2)
    assert d.admit(liquidation_key(a), a.ts_event, conn_id=2)  # a third one: new
    assert d.admit(liquidation_key(b), b.ts_event, conn_id=2)
    later = _liq(ts_ms=1_739_502_302_929 + 120_000)
    assert d.admit(liquidation_key(later), later.ts_event, conn_id=2)
    assert len(d) == 1  # older keys left the window
    assert d.admit(liquidation_key(a), a.ts_event, conn_id=3)  # forgotten after the window


def test_backoff_grows_with_jitter_and_cap():
    rng = random.Random(0)
    delays = [backoff_delay(n, 0.5, 8.0, rng) for n in range(1, 10)]
    for n, d in enumerate(delays, start=1):
        top = min(8.0, 0.5 * 2 ** (n - 1))
        assert top * 0.5 <= d <= top
    assert max(delays) <= 8.0


def test_hyperliquid_is_unsupported_with_a_clear_message():
    with pytest.raises(LiquidationsUnsupported, match="no public liquidation feed"):
        adapter("hyperliquid").liquidations.require()
    stop = asyncio.Event()

    async def nothing(*_):
        return None

    with pytest.raises(LiquidationsUnsupported, match="Hyperliquid"):
        LiquidationStream(adapter("hyperliquid"), None, StreamScope(markets=[{"symbol": "BTC/USDC:USDC"}]), nothing, nothing,
                          stop)
    adapter("binance").liquidations.require()
    adapter("bybit").liquidations.require()


def test_catalog_keeps_several_liquidations_of_one_millisecond(tmp_path):
    same_ms = [_liq(side="LONG", qty=0.015), _liq(side="LONG", qty=0.016), _liq(side="SHORT", qty=0.015), _liq(price=96251.0)]
    keys = {liquidation_ts_init(e) for e in same_ms}
    assert len(keys) == 4 and all(0 <= k - same_ms[0].ts_event < 1_000_000 for k in keys)
    tables = build_tables(same_ms)
    table = tables[(LIQUIDATION, "BTCUSDT-LINEAR.BYBIT")]
    assert table.num_rows == 4 and table.column_names == ["instrument_id", "side", "quantity", "price", "value", "type", "ts_event", "ts_init"]
    assert table["ts_init"].to_pylist() == sorted(table["ts_init"].to_pylist())
    store = CatalogStore(tmp_path, durable=False)
    assert store.write(same_ms) == {f"{LIQUIDATION}/BTCUSDT-LINEAR.BYBIT": 4}
    assert store.write(same_ms[1:3]) == {f"{LIQUIDATION}/BTCUSDT-LINEAR.BYBIT": 0}  # re-sent: nothing doubled
    one_more = _liq(qty=0.017)
    assert store.write([one_more]) == {f"{LIQUIDATION}/BTCUSDT-LINEAR.BYBIT": 1}
    import pyarrow.parquet as pq

    rows = pq.read_table(store.files(LIQUIDATION, "BTCUSDT-LINEAR.BYBIT")[0]).to_pylist()
    assert len(rows) == 5 and {r["ts_event"] for r in rows} == {same_ms[0].ts_event}
    assert sorted((r["side"], r["quantity"], r["price"]) for r in rows) == sorted((e.side, e.quantity, e.price) for e in [*same_ms, one_more])


# -- the bus's last-value cache and recorded gaps -------------------------------------------------


def test_last_value_replay_matches_the_subscribed_prefix_only():
    from actors.taps_cache import matching

    cache = {b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT": b"1", b"liq.BINANCE.BTCUSDT-PERP.BINANCE": b"2", b"oi.BYBIT.BTCUSDT-LINEAR.BYBIT": b"3"}
    assert dict(matching(cache, b"liq.")) == {b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT": b"1", b"liq.BINANCE.BTCUSDT-PERP.BINANCE": b"2"}
    assert dict(matching(cache, b"liq.BYBIT.")) == {b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT": b"1"}
    assert dict(matching(cache, b"")) == cache
    assert list(matching(cache, b"gap.")) == []


def _gap(iid: str, start: int, seconds: float, stream: str = "liquidations", reason: str = "dropped"):
    from messages.events import Gap

    venue = iid.rsplit(".", 1)[1]
    return Gap(venue=venue, symbol="BTC/USDT:USDT", instrument_id=iid, ts_event=start, ts_recv=start,
               stream=stream, end_ns=start + int(seconds * 1e9), reason=reason)


def _stored_liq(iid: str, ts: int, qty: float = 1.0) -> Liquidation:
    venue = iid.rsplit(".", 1)[1]
    return Liquidation(venue=venue, symbol="BTC/USDT:USDT", instrument_id=iid, ts_event=ts, ts_recv=ts,
                       side="LONG", quantity=qty, price=90_000.0, value=qty * 90_000.0)


def test_recorded_gaps_are_listed_filtered_and_become_liquidation_holes(tmp_path):
    from storage.gaps import gap_lines, gaps, liquidation_coverage

    t0 = 1_795_000_000_000_000_000
    byb, bin_ = "BTCUSDT-LINEAR.BYBIT", "BTCUSDT-PERP.BINANCE"
    CatalogStore(tmp_path, durable=False).write([
        _stored_liq(byb, t0), _stored_liq(byb, t0 + 10 * 10**9, 2.0), _stored_liq(byb, t0 + 30 * 10**9, 3.0), _stored_liq(bin_, t0 + 5 * 10**9),
        _gap(byb, t0 + 12 * 10**9, 4.5), _gap(byb, t0 + 12 * 10**9, 60, stream="open_interest", reason="outbox full: 3 events dropped"),
        _gap(bin_, t0 - 100 * 10**9, 90, reason="collector was not running"),
    ])
    every = gaps(tmp_path)
    assert [(g.instrument_id, g.stream, g.start_ns - t0, g.seconds) for g in every] == [
        (bin_, "liquidations", -100 * 10**9, 90.0), (byb, "liquidations", 12 * 10**9, 4.5), (byb, "open_interest", 12 * 10**9, 60.0)]
    assert [g.venue for g in gaps(tmp_path, venue="bybit")] == ["BYBIT", "BYBIT"]
    assert [g.stream for g in gaps(tmp_path, instrument_id=byb, stream="open_interest")] == ["open_interest"]
    # a window filter keeps a gap that started before it but reaches into it
    assert [g.instrument_id for g in gaps(tmp_path, start_ns=t0 - 20 * 10**9, end_ns=t0 - 15 * 10**9)] == [bin_]
    assert gaps(tmp_path, start_ns=t0 + 100 * 10**9) == []
    with pytest.raises(ValueError, match="unknown stream 'liq'"):
        gaps(tmp_path, stream="liq")
    cov = {c.instrument_id: c for c in liquidation_coverage(tmp_path)}
    assert (cov[byb].kind, cov[byb].source, cov[byb].rows, cov[byb].first_ns - t0, cov[byb].last_ns - t0) == (
        "liquidations", "stream", 3, 0, 30 * 10**9)
    assert cov[byb].holes == [(t0 + 12 * 10**9, t0 + 16_500_000_000)]  # the liquidation gap only
    assert cov[bin_].rows == 1 and len(cov[bin_].holes) == 1
    lines = gap_lines(tmp_path, str)
    assert lines[1] == "recorded gaps: 3" and "outbox full: 3 events dropped" in lines[-1]
    assert gap_lines(tmp_path / "empty", str) == []


def test_coverage_command_shows_liquidations_and_recorded_gaps(tmp_path):
    import json

    from click.testing import CliRunner

    from cli.coverage import coverage_cmd

    t0 = 1_795_000_000_000_000_000
    iid = "ETHUSDT-LINEAR.BYBIT"
    CatalogStore(tmp_path, durable=False).write([_stored_liq(iid, t0), _stored_liq(iid, t0 + 2 * 10**9, 2.0),
                                                 _gap(iid, t0 + 10**9, 0.5, reason="silence: no message and no pong for 60 s")])
    out = CliRunner().invoke(coverage_cmd, ["--catalog", str(tmp_path)])
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if line.startswith("BYBIT"))
    assert row.split()[1:5] == [iid, "liquidations", "stream", "2"] and row.split()[-1] == "1"  # 2 rows, 1 hole
    assert "recorded gaps: 1" in out.output and "silence: no message and no pong for 60 s" in out.output
    as_json = CliRunner().invoke(coverage_cmd, ["--catalog", str(tmp_path), "--json"])
    (liq,) = [r for r in map(json.loads, as_json.output.splitlines()) if r["kind"] == "coverage" and r["series"] == "liquidations"]
    assert liq["holes"] == [[t0 + 10**9, t0 + 1_500_000_000]]


def test_the_bus_publishes_an_event_once_even_when_storage_re_sends_it():
    from actors import taps_cache
    from actors.taps_cache import LastValueBus

    bus = LastValueBus.__new__(LastValueBus)  # no socket needed for the bookkeeping
    bus.seen = {}
    first = lambda s, src="collector.bybit", epoch=7: bus.first_time(src, epoch, s)  # noqa: E731
    assert [first(s) for s in (1, 2, 3)] == [True, True, True]
    assert [first(s) for s in (1, 2, 3)] == [False, False, False]  # a go-back-N re-send
    assert first(1, epoch=8) and first(1, src="collector.binance")  # a new run, another source
    # out of order (a send that had to wait): 5 before 4, then 4 late, each once
    assert [first(5), first(4), first(5), first(4), first(6)] == [True, True, False, False, True]
    assert bus.seen[("collector.bybit", 7)] == [6, set()]
    # a hole that never fills (the event was lost for good) cannot grow memory without bound
    taps_cache.MAX_OUT_OF_ORDER, saved = 3, taps_cache.MAX_OUT_OF_ORDER
    try:
        assert all(first(s) for s in (8, 9, 10, 11))
        assert bus.seen[("collector.bybit", 7)] == [11, set()] and first(7) is False
    finally:
        taps_cache.MAX_OUT_OF_ORDER = saved


def _colliding_pair() -> tuple[Liquidation, Liquidation]:
    """Two different liquidations of one ms whose first slots hash alike (the soak met one in
    3.6 M; here found by trying quantities, a birthday search over 10^6 slots)."""
    seen: dict[int, Liquidation] = {}
    for i in range(1, 100_000):
        e = _liq(qty=round(0.001 * i, 3))
        slot = liquidation_ts_init(e)
        if slot in seen:
            return seen[slot], e
        seen[slot] = e
    raise AssertionError("no collision found")


def _stored(root) -> list[tuple]:
    import pyarrow.dataset as ds

    table = ds.dataset(root / "data" / LIQUIDATION, format="parquet").to_table()
    return sorted(zip(table["quantity"].to_pylist(), table["ts_init"].to_pylist(), strict=True))


def test_two_liquidations_whose_keys_hash_alike_are_both_stored_and_a_resend_adds_nothing(tmp_path):
    a, b = _colliding_pair()
    together, apart, b_first = (CatalogStore(tmp_path / name, durable=False) for name in ("together", "apart", "b_first"))
    together.write([a, b])  # in one flush
    apart.write([a])  # in two flushes
    apart.write([b])
    b_first.write([b])
    b_first.write([a, b])  # the stored twin and a newcomer in one batch
    for store in (together, apart, b_first):
        rows = _stored(store.root)
        assert sorted(q for q, _ in rows) == sorted([a.quantity, b.quantity]), rows
        assert len({ts for _, ts in rows}) == 2 and all(0 <= ts - a.ts_event < 1_000_000 for _, ts in rows)
        before = rows
        assert store.write([b, a]) == {f"{LIQUIDATION}/{a.instrument_id}": 0}  # re-sent, any order
        store.write([a])
        assert _stored(store.root) == before
