"""Liquidations through the whole mesh: the coordinator runs the emulator, collectors (real
ccxt.pro), validator (its bus with the last-value cache) and writer; the catalog is read back by
NautilusTrader in a fresh process and compared with the emulator's ground truth of every
liquidation it pushed (and to how many sockets).

One mesh run (module fixture, ~30 s) in phases, each feeding one test:

1. quiet: a few liquidations, then none; `bin/tap` and the documented plain pyzmq subscriber
   attach and must get the last liquidation of every instrument at once (nothing new is
   generated, so it can only be the bus's last-value replay);
2. cascade: 3,000 + 500 liquidations on Bybit in 2 s, 600 on Binance (which pushes at most one
   per symbol per second);
3. a steady flow (10 per symbol per second): the tap's receipt times are compared with the
   emulator's send times; then the tap is killed (-9), and Bybit's sockets are dropped (and
   refused for 1.5 s) while liquidations keep coming: the collector reconnects, records a gap;
4. quiet again, SIGINT, catalog.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from emulator.ground_truth import load_ground_truth
from tests.harness import ROOT, mesh_log, start_mesh, stop_mesh, wait_for

IID = {"BINANCE": "{}-PERP.BINANCE", "BYBIT": "{}-LINEAR.BYBIT"}
WATCHED = ("BTCUSDT", "ETHUSDT")
INSTRUMENTS = {IID[v].format(s) for v in IID for s in WATCHED}

_READ = r"""
import json, sys
from pathlib import Path
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import Gap, Liquidation
cat = ParquetDataCatalog(sys.argv[1])
data = Path(sys.argv[1]) / "data"
liq = [[str(r.data.instrument_id), r.data.ts_event, r.data.side, r.data.quantity, r.data.price, r.data.value, r.data.ts_init]
       for r in cat.query(Liquidation)] if (data / "custom_liquidation").exists() else []
gaps = [[str(r.data.instrument_id), r.data.stream, r.data.ts_event, r.data.end_ns, r.data.reason]
        for r in cat.query(Gap)] if (data / "custom_gap").exists() else []
print(json.dumps({"liq": liq, "gaps": gaps}))
"""


def doc_subscriber() -> str:
    """The plain pyzmq + msgspec subscriber of docs/liquidations.md, verbatim."""
    text = (ROOT / "docs" / "liquidations.md").read_text()
    blocks = [b.split("\n", 1)[1] for b in text.split("```python")[1:]]
    return next(b.split("```", 1)[0] for b in blocks if "zmq.SUBSCRIBE" in b)


class LineReader:
    """A subprocess's stdout lines, each stamped with time.time_ns() when it arrived."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.started_ns = time.time_ns()
        self.lines: list[tuple[int, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time_ns(), line.rstrip("\n")))


def post(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as r:
        return json.loads(r.read())


def write_topology(tmp: Path) -> Path:
    topo = {
        "mesh": f"t{uuid.uuid4().hex[:10]}",
        "catalog": str(tmp / "catalog"),
        "run_dir": str(tmp / "run"),
        "venues": [
            {"venue": v, "symbols": ["BTC/USDT:USDT", "ETH/USDT:USDT"], "open_interest_interval_s": 2.0,
             "funding_interval_s": 5.0, "liquidations": True}
            for v in ("binance", "bybit")
        ],
        "writer": {"flush_interval_s": 1.0},
        "sandbox": {"universe": "core"},  # the six reference coins: 2 s polls of a full universe's bulk answers cost a core
    }
    path = tmp / "topology.yaml"
    path.write_text(yaml.safe_dump(topo))
    return path


def liquidations(truth: list[dict]) -> list[dict]:
    return [r for r in truth if r.get("kind") == "liquidation" and r["raw_symbol"] in WATCHED]


def key_truth(r: dict) -> tuple:
    return (IID[r["venue"]].format(r["raw_symbol"]), r["ts_ms"] * 1_000_000, r["side"], r["qty"], r["price"])


def settle(urls: dict[str, str]) -> None:
    """No new liquidations, and whatever was generated has been pushed (Binance: its 1 s window)."""
    for url in urls.values():
        post(url + "/_emulator/liquidation_rate?per_second=0")
    time.sleep(1.6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("liqmesh")
    topology = write_topology(tmp)
    truth_path, logs = tmp / "run" / "emulator" / "ground_truth.jsonl", tmp / "run" / "logs"
    proc = start_mesh(topology, "--sandbox")
    readers: dict[str, LineReader] = {}
    out: dict = {"tmp": tmp, "topology": topology}
    try:
        urls = json.loads(wait_for(lambda: (tmp / "run" / "emulator.json").exists() and (tmp / "run" / "emulator.json").read_text(),
                                   30, 0.05, "the emulator"))
        for venue in ("binance", "bybit"):
            wait_for(lambda v=venue: "liquidations: subscribed" in _read(logs / f"collector.{v}.log"), 30, 0.1, f"{venue} subscription")
        out["subscribed_ns"] = time.time_ns()

        # 1. a few liquidations, then quiet: the last one per instrument is what a new tap must get
        for url in urls.values():
            post(url + "/_emulator/liquidation_rate?per_second=4")
        time.sleep(2.5)
        settle(urls)
        out["quiet_ns"] = time.time_ns()
        readers["tap"] = LineReader([str(ROOT / "bin" / "tap"), str(topology), "--json"])
        readers["doc"] = LineReader([sys.executable, "-c", doc_subscriber(), _endpoint(topology)])
        deadline = time.monotonic() + 10  # everything they print now can only be a replay
        while time.monotonic() < deadline and min(len(r.lines) for r in readers.values()) < 4:
            time.sleep(0.05)
        time.sleep(0.3)

        # 2. cascades
        out["cascade_ns"] = time.time_ns()
        post(urls["bybit"] + "/_emulator/cascade?symbol=BTCUSDT&count=3000&seconds=2&side=LONG")
        post(urls["bybit"] + "/_emulator/cascade?symbol=ETHUSDT&count=500&seconds=2&side=SHORT")
        post(urls["binance"] + "/_emulator/cascade?symbol=BTCUSDT&count=600&seconds=3&side=LONG")
        time.sleep(3.2)
        settle(urls)

        # 3. steady flow (the tap's latency), kill the tap, then drop Bybit's sockets while liquidations keep coming
        out["steady_ns"] = time.time_ns()
        for url in urls.values():
            post(url + "/_emulator/liquidation_rate?per_second=10")
        time.sleep(3.0)
        readers["tap"].proc.kill()
        readers["tap"].proc.wait(5)
        out["tap_killed_ns"] = time.time_ns()
        time.sleep(0.5)
        out["drop"] = post(urls["bybit"] + "/_emulator/drop?refuse_seconds=1.5")
        wait_for(lambda: "subscribed again" in _read(logs / "collector.bybit.log"), 20, 0.1, "the Bybit reconnect")
        time.sleep(1.0)
        settle(urls)
        out["signal_ns"] = time.time_ns()
        out["exit_s"] = stop_mesh(proc, signal.SIGINT)
    finally:
        for r in readers.values():
            if r.proc.poll() is None:
                r.proc.kill()
            r.proc.wait(5)
            r.thread.join(5)  # every line it printed is read
        if proc.poll() is None:
            proc.kill()
    done = subprocess.run([sys.executable, "-c", _READ, str(tmp / "catalog")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out.update(json.loads(done.stdout.strip().splitlines()[-1]))
    out["truth"] = load_ground_truth(truth_path)
    out["readers"] = readers
    out["returncode"] = proc.returncode
    out["log"] = mesh_log(topology)
    out["collector_log"] = {v: _read(logs / f"collector.{v}.log") for v in ("binance", "bybit")}
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _endpoint(topology: Path) -> str:
    from actors.topology import load_topology

    return load_topology(topology)[0].endpoint("taps")


def stored_keys(run) -> Counter:
    return Counter((r[0], r[1], r[2], r[3], r[4]) for r in run["liq"])


def gap_windows(run, iid: str) -> list[tuple[int, int]]:
    return [(g[2], g[3]) for g in run["gaps"] if g[0] == iid and g[1] == "liquidations"]


def in_gap(run, r: dict) -> bool:
    return any(a <= r["sent_ns"] <= b for a, b in gap_windows(run, key_truth(r)[0]))


def test_mesh_stopped_cleanly(run):
    assert run["returncode"] == 0, run["log"][-3000:]
    assert run["exit_s"] <= 10.0 and "Traceback" not in run["log"]


def test_cascade_every_pushed_liquidation_is_stored_exactly_once(run):
    truth = liquidations(run["truth"])
    stored = stored_keys(run)
    assert max(stored.values()) == 1, "a liquidation was stored twice"
    truth_keys = {key_truth(r) for r in truth}
    assert set(stored) <= truth_keys, "the catalog holds liquidations the venue never pushed"
    for iid, ts, side, qty, price, value, ts_init in run["liq"]:
        assert iid in INSTRUMENTS and side in ("LONG", "SHORT") and value == qty * price
        assert 0 <= ts_init - ts < 1_000_000
    pushed = [r for r in truth if r["connections"] > 0]
    missing = [r for r in pushed if key_truth(r) not in stored]
    assert all(in_gap(run, r) for r in missing), f"{len(missing)} pushed liquidations missing outside any gap"
    # the cascades (before the drop: no gap) arrived completely
    cascade = [r for r in truth if run["cascade_ns"] <= r["sent_ns"] < run["steady_ns"]]
    bybit_btc = [r for r in cascade if r["venue"] == "BYBIT" and r["raw_symbol"] == "BTCUSDT"]
    assert len(bybit_btc) == 3000 and all(r["connections"] == 1 for r in cascade)
    assert {key_truth(r) for r in cascade} <= set(stored)
    # side conventions: Bybit S=Buy and Binance S=SELL both mean a LONG was liquidated
    assert all((r["side_raw"] in ("Buy", "SELL")) == (r["side"] == "LONG") for r in truth)
    assert sum(1 for r in bybit_btc if r["side"] == "LONG") > 2500
    # Binance pushes at most one liquidation per symbol per second: 600 became a handful
    binance = Counter((k[0], k[1] // 1_000_000_000) for k in stored if k[0].endswith(".BINANCE"))
    assert max(binance.values()) == 1
    assert 2 <= sum(1 for r in cascade if r["venue"] == "BINANCE" and r["raw_symbol"] == "BTCUSDT") <= 5


def test_a_drop_reconnects_and_records_a_gap_that_covers_the_outage(run):
    log = run["collector_log"]["bybit"]
    assert "liquidations: connection lost" in log and "reconnecting in" in log and "subscribed again after" in log
    drop_ns = run["drop"]["drop_ns"]
    for raw in WATCHED:
        windows = gap_windows(run, IID["BYBIT"].format(raw))
        assert len(windows) == 1, windows
        (start, end), = windows
        assert start <= drop_ns < end and end - start >= 1.5e9  # the venue refused new sockets for 1.5 s
    assert not [g for g in run["gaps"] if g[0].endswith(".BINANCE")]  # Binance was not touched
    truth = [r for r in liquidations(run["truth"]) if r["sent_ns"] > run["subscribed_ns"]]
    stored = stored_keys(run)
    missed = [r for r in truth if key_truth(r) not in stored]
    assert missed, "liquidations pushed while Bybit refused connections cannot have been stored"
    assert all(r["venue"] == "BYBIT" and in_gap(run, r) for r in missed)
    # and after the outage the stream is complete again
    after = [r for r in truth if r["venue"] == "BYBIT" and r["sent_ns"] > max(g[3] for g in run["gaps"])]
    assert after and all(key_truth(r) in stored for r in after)


def test_a_late_tap_gets_the_last_value_then_live_events_within_milliseconds(run):
    tap = run["readers"]["tap"]
    truth = liquidations(run["truth"])
    rows = [(t, json.loads(line)) for t, line in tap.lines]
    replay = [(t, e) for t, e in rows if t < run["cascade_ns"]]
    # 1. last value on connect: one per instrument, the newest pushed before the tap attached
    last = {}
    for r in truth:
        if r["connections"] > 0 and r["sent_ns"] < run["quiet_ns"]:
            last[key_truth(r)[0]] = key_truth(r)
    got = {e["instrument_id"]: (e["instrument_id"], e["ts_event"], e["side"], e["quantity"], e["price"]) for _, e in replay}
    assert len(replay) == len(got) == 4 and got == last
    print(f"last values replayed {(max(t for t, _ in replay) - tap.started_ns) / 1e6:.0f} ms after starting bin/tap")
    assert max(t for t, _ in replay) - tap.started_ns < 5e9  # process start included (a loaded machine: generous)
    # 2. live: every liquidation pushed while it ran arrived (the cascade too: nothing dropped)
    live = {(e["instrument_id"], e["ts_event"], e["side"], e["quantity"], e["price"]): t for t, e in rows if t >= run["cascade_ns"]}
    pushed = {key_truth(r): r["sent_ns"] for r in truth if run["cascade_ns"] <= r["sent_ns"] < run["tap_killed_ns"] - 1e9}
    assert len(pushed) > 3500 and set(pushed) <= set(live)
    # ... within milliseconds of the venue's push at a steady rate; a cascade batch of hundreds
    # queues behind itself (bench/liquidation_latency.py has the figures per rate)
    for phase, lo, hi in (("steady", run["steady_ns"], run["tap_killed_ns"] - 1e9), ("cascade", run["cascade_ns"], run["steady_ns"])):
        ms = sorted((live[k] - sent) / 1e6 for k, sent in pushed.items() if lo <= sent < hi)
        p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99)]
        print(f"tap latency after the venue's push, {phase}: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(ms)} liquidations")
        # a cascade on a loaded 2-core machine queues: bound it by SC-003 (2 s), not by milliseconds
        assert (p50 < 200 if phase == "steady" else p50 < 2000), (phase, p50, p99)
    # 3. killed with -9 mid-run: nothing of the mesh noticed, storage has what came after
    assert tap.proc.returncode == -signal.SIGKILL
    stored = stored_keys(run)
    later = [r for r in truth if r["sent_ns"] > run["tap_killed_ns"] and r["connections"] > 0 and not in_gap(run, r)]
    assert later and all(key_truth(r) in stored for r in later)


def test_the_documented_plain_subscriber_works_against_the_bus(run):
    doc = run["readers"]["doc"]
    assert doc.proc.returncode is not None  # it ran until the end, killed by the fixture
    assert "Traceback" not in doc.proc.stderr.read()
    rows = [line.split() for _, line in doc.lines]
    seen = [(iid, int(ts), side, float(q), float(p)) for ts, iid, side, q, p, v in rows]
    assert len(seen) == len(set(seen)), "the subscriber printed a liquidation twice"
    truth = {key_truth(r) for r in liquidations(run["truth"])}
    assert set(seen) <= truth
    pushed = {key_truth(r) for r in liquidations(run["truth"]) if run["cascade_ns"] <= r["sent_ns"] < run["signal_ns"] - 2e9
              and r["connections"] > 0}
    assert pushed <= set(seen)
    replayed = [k for (t, _), k in zip(doc.lines, seen) if t < run["cascade_ns"]]
    assert len(replayed) == 4  # the last value of each instrument, at connect
