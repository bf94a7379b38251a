"""Liquidation streams: the real ccxt.pro clients against the emulator's WebSockets on loopback,
compared with the emulator's ground truth (what the venue pushed, and to how many sockets)."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import zmq
import zmq.asyncio

from venues.liquidation_stream import LiquidationStream, LiquidationsUnsupported, StreamConfig, StreamScope
from actors.validator import topic
from venues import adapter
from emulator.ground_truth import load_ground_truth
from emulator.process import spawn_emulator
from emulator.server import start_emulator
from messages.codec import encode
from messages.events import Liquidation

ROOT = Path(__file__).resolve().parents[2]
IID = {"binance": "{}-PERP.BINANCE", "bybit": "{}-LINEAR.BYBIT"}


def _truth(path: Path, venue: str) -> list[dict]:
    return [r for r in load_ground_truth(path) if r.get("kind") == "liquidation" and r["venue"] == venue.upper()]


def _key_truth(r: dict, venue: str) -> tuple:
    return (IID[venue].format(r["raw_symbol"]), r["ts_ms"] * 1_000_000, r["side"], r["qty"], r["price"])


def _key_event(e: Liquidation) -> tuple:
    return (e.instrument_id, e.ts_event, e.side, e.quantity, e.price)


class Harness:
    """Emulator + one LiquidationStream in this event loop."""

    def __init__(self, tmp: Path, venue: str, rate: float = 0.0, universe: str = "full", **stream_kw):
        self.tmp, self.venue, self.rate, self.stream_kw = tmp, venue, rate, stream_kw
        self.universe = universe
        self.events: list[Liquidation] = []
        self.gaps: list[tuple[int, int, str]] = []
        self.gt = tmp / f"gt-{venue}.jsonl"

    async def __aenter__(self):
        self.emu = await start_emulator(venues=[self.venue], ground_truth=self.gt, liquidation_rate=self.rate,
                                        universe=self.universe)
        self.url = self.emu.urls[self.venue]
        self.ad = adapter(self.venue)
        self.client = self.ad.client(self.url, pro=True)
        markets = await self.client.load_markets()
        self.markets = [self.ad.resolve(markets, s) for s in ("BTC", "ETH")]
        self.stop = asyncio.Event()
        self.http = aiohttp.ClientSession()

        async def on_event(e):
            self.events.append(e)

        async def on_gap(a, b, r):
            self.gaps.append((a, b, r))

        kw = {"backoff_initial_s": 0.2, "backoff_max_s": 2.0, **self.stream_kw}
        factory = (lambda: self.ad.client(self.url, pro=True)) if kw.pop("with_factory", False) else None
        all_markets = list(self.ad.perpetuals(markets).values()) if kw.pop("all_symbols", False) else None
        self.stream = LiquidationStream(self.ad, self.client, StreamScope(markets=self.markets, all_markets=all_markets),
                                        on_event, on_gap, self.stop, StreamConfig(**kw), client_factory=factory)
        self.task = asyncio.create_task(self.stream.run())
        await self.until(lambda: self.stream.stats.connects >= 1, 10, "first subscription")
        self.subscribed_ns = time.time_ns()  # pushed before this: nobody was subscribed yet, no gap covers it
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.client.close()
        await self.http.close()
        await self.emu.close()

    async def post(self, path: str) -> dict:
        async with self.http.post(self.url + path) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def until(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def truth(self) -> list[dict]:
        return _truth(self.gt, self.venue)

    async def settled(self, quiet_s: float = 1.5, timeout: float = 15):
        """Wait until every liquidation pushed to a socket has arrived and nothing new came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pushed = [r for r in self.truth() if r["connections"] > 0]
            if len(self.events) >= len(pushed) and pushed:
                await asyncio.sleep(quiet_s)
                if len([r for r in self.truth() if r["connections"] > 0]) == len(pushed):
                    return
            await asyncio.sleep(0.1)


def _assert_exact(h: Harness):
    pushed = [r for r in h.truth() if r["connections"] > 0]
    got = [_key_event(e) for e in h.events]
    assert len(got) == len(set(got)), "a liquidation was delivered twice"
    assert sorted(got) == sorted(_key_truth(r, h.venue) for r in pushed)
    for e in h.events:
        assert e.value == e.quantity * e.price
        assert e.ts_recv >= e.ts_event


def test_bybit_cascade_every_liquidation_arrives(tmp_path):
    async def main():
        async with Harness(tmp_path, "bybit") as h:
            await h.post("/_emulator/cascade?symbol=BTCUSDT&count=4000&seconds=3&side=LONG")
            await h.post("/_emulator/cascade?symbol=ETHUSDT&count=1000&seconds=2&side=SHORT")
            await h.settled()
            truth = h.truth()
            assert len(truth) == 5000 and all(r["connections"] == 1 for r in truth)
            _assert_exact(h)
            # the venue's side convention: Bybit S=Buy is a LONG position liquidated
            assert all((r["side_raw"] == "Buy") == (r["side"] == "LONG") for r in truth)
            assert sum(e.side == "LONG" for e in h.events if e.instrument_id.startswith("BTC")) > 3000
            # SC-003: each within 2 s of the venue's liquidation time (500 ms batching included)
            assert max(e.ts_recv - e.ts_event for e in h.events) < 2 * 10**9
            assert h.gaps == [] and h.stream.stats.duplicates == 0

    asyncio.run(main())


def test_binance_cascade_delivers_exactly_what_the_venue_pushed(tmp_path):
    async def main():
        async with Harness(tmp_path, "binance", rate=1.0) as h:
            await h.post("/_emulator/cascade?symbol=BTCUSDT&count=3000&seconds=3")
            await asyncio.sleep(3.5)
            await h.post("/_emulator/liquidation_rate?per_second=0")
            await h.settled()
            truth = h.truth()
            _assert_exact(h)
            # the venue samples: at most one push per symbol per second, SELL = a LONG liquidated
            per_second = {}
            for r in truth:
                per_second.setdefault((r["raw_symbol"], r["ts_ms"] // 1000), []).append(r)
            assert all(len(v) == 1 for v in per_second.values())
            assert all((r["side_raw"] == "SELL") == (r["side"] == "LONG") for r in truth)
            btc = [r for r in truth if r["raw_symbol"] == "BTCUSDT"]
            assert 3 <= len(btc) <= 6  # 3000 liquidations in 3 s reach a client as ~1 per second
            assert max(e.ts_recv - e.ts_event for e in h.events) < 2 * 10**9

    asyncio.run(main())


def test_drop_reconnects_and_reports_the_gap(tmp_path):
    async def main():
        async with Harness(tmp_path, "bybit", rate=20.0) as h:
            await asyncio.sleep(1.5)
            before = len(h.events)
            assert before > 0
            drop = await h.post("/_emulator/drop?refuse_seconds=1.5")
            await h.until(lambda: h.gaps, 15, "the gap report")
            await asyncio.sleep(1.5)
            (start, end, reason), = h.gaps
            assert start <= drop["drop_ns"] < end and end - start >= 1.5e9
            assert "closed" in reason or "Network" in reason
            assert h.stream.stats.failures >= 2  # the refused re-dials count too
            assert len(h.events) > before  # streaming again
            truth = [r for r in h.truth() if r["raw_symbol"] in ("BTCUSDT", "ETHUSDT")]  # the watched ones
            got = {_key_event(e) for e in h.events}
            missed = [r for r in truth if _key_truth(r, "bybit") not in got and h.subscribed_ns < r["sent_ns"] < time.time_ns() - 1e9]
            assert missed, "liquidations published during the outage cannot have arrived"
            for r in missed:  # everything missing lies inside the reported gap
                assert start <= r["sent_ns"] <= end, r
            assert all(r["connections"] > 0 for r in truth if _key_truth(r, "bybit") in got)
            assert len(got) == len(h.events)

    asyncio.run(main())


def test_binance_all_symbols_stream_delivers_every_listed_perpetual(tmp_path):
    """`!forceOrder@arr`: liquidations of symbols nobody configured arrive with their own ids (the
    reference coins' universe: at this rate every one of them has liquidations within seconds)."""
    async def main():
        async with Harness(tmp_path, "binance", rate=3.0, universe="core", all_symbols=True) as h:
            await asyncio.sleep(3.0)
            await h.post("/_emulator/liquidation_rate?per_second=0")
            await h.settled()
            truth = h.truth()
            listed = {m["id"] for m in h.ad.perpetuals(h.client.markets).values()}
            assert {r["raw_symbol"] for r in truth} == listed and len(listed) > 2
            # once subscribed, the one all-symbols socket got every push of every symbol
            assert all(r["connections"] == 1 for r in truth if r["sent_ns"] > h.subscribed_ns)
            _assert_exact(h)
            assert {e.instrument_id for e in h.events} == {f"{s}-PERP.BINANCE" for s in listed}

    asyncio.run(main())


def test_all_symbols_is_refused_on_bybit_with_a_clear_message():
    ad = adapter("bybit")
    try:
        scope = StreamScope(markets=[{"symbol": "BTC/USDT:USDT", "id": "BTCUSDT"}], all_markets=[])
        LiquidationStream(ad, None, scope, None, None, asyncio.Event())
    except LiquidationsUnsupported as exc:
        assert "liquidation_all_symbols: bybit has no all-symbols liquidation stream" in str(exc)
    else:
        raise AssertionError("bybit accepted an all-symbols stream")


def test_silence_is_detected_and_reconnected(tmp_path):
    async def main():
        async with Harness(tmp_path, "binance", rate=2.0, silence_timeout_s=3.0) as h:
            await asyncio.sleep(1.0)
            silenced = await h.post("/_emulator/silence?seconds=30")
            assert silenced["silenced"] == 1
            await h.until(lambda: h.gaps, 15, "silence detection")
            (start, end, reason), = h.gaps
            assert "silence" in reason
            assert start <= silenced["silence_ns"] + 2e9 and end > silenced["silence_ns"]
            n = len(h.events)
            await h.until(lambda: len(h.events) > n, 10, "events on the new connection")
            assert h.stream.stats.connects == 2

    asyncio.run(main())


def test_rotation_before_the_age_limit_leaves_no_hole(tmp_path):
    async def main():
        async with Harness(tmp_path, "bybit", rate=30.0, with_factory=True, max_connection_age_s=1.5) as h:
            # a 500 ms push lands in a rotation's overlap about every other time: wait for one that did
            await h.until(lambda: h.stream.stats.rotations >= 2 and h.stream.stats.duplicates > 0, 30,
                          "two rotations, one overlapping a push")
            await h.post("/_emulator/liquidation_rate?per_second=0")
            await h.settled()
            assert h.gaps == []
            got = [_key_event(e) for e in h.events]
            assert len(got) == len(set(got))
            pushed = {_key_truth(r, "bybit") for r in h.truth() if r["connections"] > 0}
            assert set(got) == pushed
            assert h.stream.stats.duplicates > 0  # the overlap did deliver twice, and was removed

    asyncio.run(main())


def _run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "liquidations", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_cli_prints_lines_and_hyperliquid_limitation(tmp_path):
    ready, gt = tmp_path / "emu.json", tmp_path / "gt.jsonl"
    emu = spawn_emulator(ready, "--venues", "binance,bybit", "--ground-truth", str(gt), "--liquidation-rate", "4",
                         "--log-level", "WARNING", log=tmp_path / "emulator.log", cwd=ROOT, poll_s=0.05)
    try:
        out = _run_cli("BTC", "--emulator", str(ready), "--json", "--seconds", "4")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert {r["venue"] for r in rows} == {"BINANCE", "BYBIT"}
        assert all(r["side"] in ("LONG", "SHORT") and r["kind"] == "liquidation" for r in rows)
        truth = {(IID[r["venue"].lower()].format(r["raw_symbol"]), r["ts_ms"] * 1_000_000, r["side"], r["qty"], r["price"])
                 for r in _truth(gt, "binance") + _truth(gt, "bybit")}
        assert all((r["instrument_id"], r["ts_event"], r["side"], r["quantity"], r["price"]) in truth for r in rows)
        text = _run_cli("BTC", "-v", "bybit", "--emulator", str(ready), "--seconds", "2")
        assert text.returncode == 0 and "BTCUSDT-LINEAR.BYBIT" in text.stdout and "liquidated" in text.stdout
        hl = _run_cli("BTC", "-v", "hyperliquid", "-v", "bybit", "--emulator", str(ready), "--seconds", "1")
        assert hl.returncode == 1 and "Hyperliquid has no public liquidation feed" in hl.stderr
    finally:
        emu.stop(timeout_s=10)


@contextlib.contextmanager
def _bus():
    """A PUB socket on a fresh endpoint, standing in for the validator's live bus."""
    endpoint = f"ipc://@tap-test-{uuid.uuid4().hex[:8]}"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    try:
        yield pub, endpoint
    finally:
        pub.close()
        ctx.term()


def test_tap_filters_and_prints_bus_events(tmp_path):
    ts = time.time_ns() // 1_000_000 * 1_000_000
    events = [
        Liquidation(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=ts, ts_recv=ts,
                    side="LONG", quantity=0.5, price=90000.0, value=45000.0),
        Liquidation(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=ts, ts_recv=ts,
                    side="SHORT", quantity=1.0, price=90010.0, value=90010.0),
        Liquidation(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=ts + 1_000_000,
                    ts_recv=ts + 1_000_000, side="SHORT", quantity=2.0, price=90020.0, value=180040.0),
        Liquidation(venue="BYBIT", symbol="ETH/USDT:USDT", instrument_id="ETHUSDT-LINEAR.BYBIT", ts_event=ts, ts_recv=ts,
                    side="SHORT", quantity=2.0, price=3000.0, value=6000.0),
    ]
    with _bus() as (pub, endpoint):
        proc = subprocess.Popen([sys.executable, "-m", "actors.tap", "--endpoint", endpoint, "--venue", "bybit", "--symbol",
                                 "BTC", "--json", "--count", "2", "--seconds", "20"], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:  # PUB/SUB: re-send until the late joiner got them
            for e in events:
                pub.send_multipart([topic(e), encode(e)])
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=5)
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 and all(r["instrument_id"] == "BTCUSDT-LINEAR.BYBIT" and r["side"] == "SHORT" for r in rows)
    assert {r["quantity"] for r in rows} == {1.0, 2.0}  # two distinct events, not one repeated


def test_tap_drops_an_exact_repeat_on_a_topic():
    """The bus's last-value replay reaches every subscriber of a topic: a tap shows it once."""
    ts = time.time_ns() // 1_000_000 * 1_000_000
    e = Liquidation(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=ts, ts_recv=ts,
                    side="LONG", quantity=1.0, price=90000.0, value=90000.0)
    with _bus() as (pub, endpoint):
        proc = subprocess.Popen([sys.executable, "-m", "actors.tap", "--endpoint", endpoint, "--json", "--seconds", "3"],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            pub.send_multipart([topic(e), encode(e)])
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=5)
    assert len(out.splitlines()) == 1, out


_NAUTILUS_READ = r"""
import json, sys
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import Liquidation
rows = ParquetDataCatalog(sys.argv[1]).query(Liquidation)
print(json.dumps([[str(r.data.instrument_id), r.data.side, r.data.quantity, r.data.price, r.data.value, r.data.ts_event, r.data.ts_init] for r in rows]))
"""


def test_stored_liquidations_load_in_nautilus(tmp_path):
    """A cascade with several liquidations per ms, stored by the writer's CatalogStore, comes back
    from ParquetDataCatalog (fresh process) as the custom `Liquidation` type, row for row."""
    from storage.store import CatalogStore

    async def main():
        async with Harness(tmp_path, "bybit") as h:
            await h.post("/_emulator/cascade?symbol=BTCUSDT&count=3000&seconds=1")
            await h.settled(quiet_s=1.0)
            return list(h.events)

    events = asyncio.run(main())
    assert len({e.ts_event for e in events}) < len(events)  # several in one millisecond
    CatalogStore(tmp_path / "catalog", durable=False).write(events)
    out = subprocess.run([sys.executable, "-c", _NAUTILUS_READ, str(tmp_path / "catalog")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert sorted((r[0], r[5], r[1], r[2], r[3]) for r in rows) == sorted(_key_event(e) for e in events)
    assert all(0 <= r[6] - r[5] < 1_000_000 for r in rows) and [r[6] for r in rows] == sorted(r[6] for r in rows)


def test_bus_replays_the_last_value_per_topic_to_a_late_subscriber():
    """Real ZeroMQ: the validator's XPUB bus (actors/taps_cache.py) answers each subscription with
    the newest message of every matching topic; an earlier subscriber of that prefix sees it again."""
    from actors.taps_cache import LastValueBus

    endpoint = f"ipc://@lvc-test-{uuid.uuid4().hex[:8]}"

    async def recv_all(sock, wait_s: float) -> list[list[bytes]]:
        out = []
        while await sock.poll(int(wait_s * 1000)):
            out.append(await sock.recv_multipart())
        return out

    async def main():
        ctx = zmq.asyncio.Context()
        bus = LastValueBus(ctx, endpoint)
        serve = asyncio.create_task(bus.serve())
        early = ctx.socket(zmq.SUB)
        early.setsockopt(zmq.SUBSCRIBE, b"liq.BYBIT.")
        early.connect(endpoint)
        await asyncio.sleep(0.2)
        frames = [[b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT", b"b1"], [b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT", b"b2"],
                  [b"liq.BYBIT.ETHUSDT-LINEAR.BYBIT", b"e1"], [b"liq.BINANCE.BTCUSDT-PERP.BINANCE", b"n1"],
                  [b"oi.BYBIT.BTCUSDT-LINEAR.BYBIT", b"o1"]]
        for f in frames:
            await bus.send_multipart(f)
        assert await recv_all(early, 0.3) == frames[:3]
        late = ctx.socket(zmq.SUB)
        late.setsockopt(zmq.SUBSCRIBE, b"liq.")
        late.connect(endpoint)
        got = await recv_all(late, 0.5)  # nothing new was published: only the replay
        assert sorted(got) == sorted([frames[1], frames[2], frames[3]])  # the newest per liq topic, not b1, not oi
        # the replay reached the early subscriber too (its prefix matches the Bybit topics)
        assert sorted(await recv_all(early, 0.3)) == sorted([frames[1], frames[2]])
        await bus.send_multipart([b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT", b"b3"])
        assert await recv_all(late, 0.3) == [[b"liq.BYBIT.BTCUSDT-LINEAR.BYBIT", b"b3"]]
        assert bus.subscriptions == 2 and bus.replayed == 3
        serve.cancel()
        for s in (early, late):
            s.close(linger=0)
        bus.close()
        ctx.term()

    asyncio.run(main())
