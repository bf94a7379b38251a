"""Record and replay: a sandbox mesh session recorded with `record: true`, then replayed by the
emulator (`sandbox.replay`) into a second mesh on a fresh catalog; both catalogs loaded by the real
ParquetDataCatalog in fresh processes and compared.

What must match, and why:
- The replay answers each request with the next recorded answer of its kind (operation, path,
  query, body), so the n-th poll of a stream gets the n-th recorded answer, whatever the poll
  schedule. The replay mesh polls 3-4x faster than the recording one on purpose: the sequence of
  rows is the same even though the wall-clock request times are not.
- Binance and Bybit rows carry the venue's time from the body; Hyperliquid rows are timed at
  receipt, and the replay hands the recorded receipt time back (X-Derivs-Recorded-Ns), so every
  row is equal: instrument id, ts_event, ts_init and every value.
- Run 1 was stopped with SIGINT: a poll whose answers were all recorded in the last moments may
  have been abandoned before its events left the collector. The replay stores those (it runs the
  recording to its end), so the replay catalog holds every row of the first one plus, at most,
  rows of answers recorded within a second of the signal. Nothing else: a replay never invents
  a row (after the end: 503 maintenance).
- Instrument definitions come from the replayed listings and are equal; their ts_event is the
  collector's own clock (not compared).
"""

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from emulator.process import spawn_emulator
from venues.recording import load
from venues import adapter
from tests.harness import ROOT, mesh_log, read_catalog, start_mesh, stop_mesh, wait_for, write_topology

RECORD_S = 4.0
KEY, SECRET = "KEY-" + "k" * 40, "SECRET-" + "s" * 40  # fake Binance keys in run 1's environment
TAIL_NS = 1_000_000_000  # answers recorded this close to the signal may not have been stored by run 1
VENUES = ("binance", "bybit", "hyperliquid")
LIQ_VENUES = ("binance", "bybit")  # Hyperliquid has no public liquidation feed
_READ_LIQUIDATIONS = r"""
import json, sys
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import Gap, Liquidation
unwrap = lambda r: getattr(r, "data", r)
out = []
for path in sys.argv[1:]:
    cat = ParquetDataCatalog(path)
    out.append({"rows": [[str(r.instrument_id), r.ts_event, r.ts_init, str(r.side), r.quantity, r.price, r.value]
                         for r in map(unwrap, cat.query(Liquidation))],
                "gaps": [[str(r.instrument_id), r.ts_event, r.end_ns, r.reason] for r in map(unwrap, cat.query(Gap))]})
print(json.dumps(out))
"""


def status(url: str) -> dict:
    with urllib.request.urlopen(url + "/_emulator/replay", timeout=5) as answer:
        return json.load(answer)


def after_end(states: dict[str, dict]) -> Counter:
    """Answers given past the end of the recording, per (venue, operation)."""
    out = Counter()
    for venue, state in states.items():
        for t in state["tracks"]:
            if t["op"]:
                out[venue, t["op"]] += t["after_end"]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("record-replay")
    # run 1: the emulator's market model, every venue recorded
    (tmp / "record").mkdir()
    topology = write_topology(tmp / "record", oi_s=1.0, funding_s=2.0)
    topo = yaml.safe_load(topology.read_text())
    for v in topo["venues"]:
        v["record"] = True
        v["liquidations"] = v["venue"] in LIQ_VENUES
    topology.write_text(yaml.safe_dump(topo))
    with pytest.MonkeyPatch.context() as env:  # the coordinator and its children inherit them
        env.setenv("BINANCE_API_KEY", KEY)
        env.setenv("BINANCE_API_SECRET", SECRET)
        proc = start_mesh(topology, "--sandbox")
    try:
        emulator_file = tmp / "record" / "run" / "emulator.json"
        wait_for(emulator_file.exists, 30, what="run 1's emulator")
        for venue in LIQ_VENUES:  # more liquidations than the default 0.2 per symbol per second
            urllib.request.urlopen(urllib.request.Request(json.loads(emulator_file.read_text())[venue] +
                                   "/_emulator/liquidation_rate?per_second=2", method="POST", data=b""), timeout=5).close()
        wait_for(lambda: (tmp / "record" / "catalog" / "data" / "custom_open_interest").exists(), 30, what="first rows of run 1")
        ctl = [subprocess.run([sys.executable, "-m", "actors.ctl", "--topology", str(topology), "status", *json_flag],
                              cwd=ROOT, capture_output=True, text=True, timeout=30) for json_flag in (["--json"], [])]
        binance_pid = next(a["pid"] for a in json.loads(ctl[0].stdout) if a["name"] == "collector.binance")
        collector_env = Path(f"/proc/{binance_pid}/environ").read_bytes().decode(errors="replace")
        time.sleep(RECORD_S)
        signal_ns = time.time_ns()
        stop_mesh(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    record_rc, record_log = proc.returncode, mesh_log(topology)

    # run 2: the recording served by the emulator (path relative to the topology file), another schedule
    (tmp / "replay").mkdir()
    replay_topology = write_topology(tmp / "replay", oi_s=0.3, funding_s=0.5,
                                     sandbox={"rate_limits": False, "replay": "../record/run/recordings"})
    topo = yaml.safe_load(replay_topology.read_text())
    for v in topo["venues"]:
        v["liquidations"] = v["venue"] in LIQ_VENUES
    replay_topology.write_text(yaml.safe_dump(topo))
    proc = start_mesh(replay_topology, "--sandbox")
    try:
        ready = tmp / "replay" / "run" / "emulator.json"
        urls = wait_for(lambda: ready.exists() and json.loads(ready.read_text()), 30, what="the replay emulator")
        wait_for(lambda: all(status(u)["done"] and not status(u)["ws"]["left"] for u in urls.values()), 30,
                 what="every recorded answer and liquidation message served")
        # every stream's poll loop went on past the end (a maintenance answer): the polls that got the
        # last recorded answers are complete and their events in the outbox (the drain at stop acks them)
        done_at = after_end({v: status(u) for v, u in urls.items()})
        streams = {k for k in done_at} | {(v, op) for v in urls for op in ("open_interest", "funding")}
        wait_for(lambda: all(after_end({v: status(u) for v, u in urls.items()})[k] > done_at[k] for k in streams), 20,
                 what="a poll of every stream after the end of the recording")
        states = {v: status(u) for v, u in urls.items()}
        stop_mesh(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    with ThreadPoolExecutor(3) as pool:
        first, second = pool.map(read_catalog, [tmp / "record" / "catalog", tmp / "replay" / "catalog"])
        liq = pool.submit(subprocess.run, [sys.executable, "-c", _READ_LIQUIDATIONS, str(tmp / "record" / "catalog"),
                                           str(tmp / "replay" / "catalog")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert liq.result().returncode == 0, liq.result().stderr[-3000:]
    first["liquidations"], second["liquidations"] = json.loads(liq.result().stdout.strip().splitlines()[-1])
    recordings = {v: load(tmp / "record" / "run" / "recordings" / f"{v}.jsonl") for v in VENUES}
    served = [json.loads(line) for line in (tmp / "replay" / "run" / "emulator" / "ground_truth.jsonl").read_text().splitlines()]
    return {"tmp": tmp, "signal_ns": signal_ns, "first": first, "second": second, "recordings": recordings,
            "served": served, "states": states, "logs": (record_log, mesh_log(replay_topology)),
            "returncodes": (record_rc, proc.returncode), "ctl": ctl, "collector_env": collector_env}


def rows(catalog: dict, kind: str) -> set[tuple]:
    return {tuple(r) for r in catalog[kind]}


def test_both_runs_stop_cleanly_and_the_replay_served_the_whole_recording_in_order(runs):
    assert runs["returncodes"] == (0, 0), runs["logs"][1][-3000:]
    for log in runs["logs"]:
        assert "Traceback" not in log and "unacknowledged" not in log
    for venue, records in runs["recordings"].items():
        assert {r["op"] for r in records} >= {"", "open_interest", "funding"}, venue
        answers = [s for s in runs["served"] if s["venue"] == venue.upper() and s["answer"] == "recorded"]
        # every recorded answer and liquidation message served exactly once, each kind in recorded order
        assert sorted(s["line"] for s in answers) == list(range(1, len(records) + 1)), venue
        frames = [s["line"] for s in answers if s["status"] == 101]
        assert frames == sorted(frames) and len(frames) == sum(r.get("kind") == "ws" for r in records)
        assert len(frames) >= 3 if venue in LIQ_VENUES else not frames, (venue, len(frames))
        by_kind = defaultdict(list)
        for s in answers:
            by_kind[s["op"], s["endpoint"], s["query"]].append(s["line"])
        assert all(lines == sorted(lines) for lines in by_kind.values())
        assert all(s["recorded_ns"] == records[s["line"] - 1]["ts_ns"] for s in answers)
        assert runs["states"][venue]["unmatched"] == 0
    # past the end: the venues' maintenance answer, never an invented row
    ends = [s for s in runs["served"] if s["answer"] == "maintenance"]
    assert {s["venue"] for s in ends} == {"BINANCE", "BYBIT", "HYPERLIQUID"} and {s["status"] for s in ends} == {503}
    assert "System maintenance" in runs["logs"][1]  # Bybit's 10016, as the collector logs it


def test_the_replayed_catalog_equals_the_recorded_one(runs):
    first, second = runs["first"], runs["second"]
    assert first["instruments"] == second["instruments"] and len(first["instruments"]) == 6
    for kind in ("open_interest", "funding", "funding_info"):
        a, b = rows(first, kind), rows(second, kind)
        assert len(a) >= 10, (kind, len(a))
        assert a <= b, (kind, sorted(a - b)[:5])  # every recorded row, equal in id, timestamps and values
        extra = b - a
        # only answers recorded right before the signal, whose poll run 1 abandoned when stopping
        assert all(r[1] >= runs["signal_ns"] - TAIL_NS for r in extra), (kind, sorted(extra))
        assert len(extra) <= 6, (kind, sorted(extra))
    assert {r[0] for r in rows(first, "open_interest")} == set(first["instruments"])


def test_hyperliquid_rows_carry_the_recorded_receive_time(runs):
    """Hyperliquid sends no time: rows are timed at receipt, and that time is what the recording
    keeps and the replay hands back (without it the replayed rows would be timed at replay)."""
    recorded = defaultdict(set)
    for r in runs["recordings"]["hyperliquid"]:
        recorded[r["op"]].add(r["ts_ns"])
    for catalog in (runs["first"], runs["second"]):
        hl_oi = [r for r in catalog["open_interest"] if r[0].endswith(".HYPERLIQUID")]
        hl_funding = [r for r in catalog["funding"] if r[0].endswith(".HYPERLIQUID")]
        assert hl_oi and hl_funding
        assert {r[1] for r in hl_oi} <= recorded["open_interest"]
        assert {r[1] for r in hl_funding} <= recorded["funding"]  # the later of rates and predictions
    assert max(r[1] for r in runs["second"]["open_interest"]) < runs["signal_ns"] + TAIL_NS  # not replay time


def test_python_m_emulator_replay_serves_a_recording_to_plain_ccxt_clients(runs, tmp_path):
    """The documented command on run 1's recording: a client without X-Derivs-Op (the CLI) gets the
    earliest recorded answer of the same request, in order; a listing is repeated after its end."""
    emu = spawn_emulator(tmp_path / "ready.json", "--replay", str(runs["tmp"] / "record" / "run"), "--venues", "bybit",
                         log=tmp_path / "emulator.stderr", cwd=ROOT, poll_s=0.05)
    try:
        url = emu.urls["bybit"]
        tickers = [r for r in runs["recordings"]["bybit"] if "/v5/market/tickers" in r["url"]]
        expected = [json.loads(r["body"])["time"] for r in sorted(tickers, key=lambda r: r["ts_ns"])[:3]]

        # the collector's REST client and its ccxt.pro client each loaded the markets once
        loads = 1 + max(t["recorded"] for t in status(url)["tracks"] if t["path"] == "/v5/market/instruments-info")

        async def session() -> list[int]:
            ad = adapter("bybit")
            client = ad.client(url)
            try:
                for _ in range(loads):  # the listing once more than recorded: repeated
                    await client.load_markets(reload=True)
                # the request the collectors' polls make, as ccxt's raw endpoint method (no operation label)
                return [(await client.publicGetV5MarketTickers({"category": "linear"}))["time"] for _ in range(3)]
            finally:
                await client.close()

        assert asyncio.run(session()) == expected
        state = status(url)
        listing = [t for t in state["tracks"] if t["path"] == "/v5/market/instruments-info"]
        assert listing and all(t["after_end"] >= 1 for t in listing)
    finally:
        emu.stop(timeout_s=10)


def test_api_keys_never_appear_in_ctl_status_logs_or_recordings(runs):
    """Run 1's collectors had fake Binance keys (read from the environment, used by ccxt); they
    reach neither `bin/ctl status` (JSON or table), nor any log, nor the recordings."""
    assert f"BINANCE_API_KEY={KEY}" in runs["collector_env"] and f"BINANCE_API_SECRET={SECRET}" in runs["collector_env"]
    json_status, table = runs["ctl"]
    assert json_status.returncode == 0 and table.returncode == 0, json_status.stderr + table.stderr
    assert {a["name"] for a in json.loads(json_status.stdout)} >= {"collector.binance", "writer", "validator"}
    run_dir = runs["tmp"] / "record" / "run"
    texts = [json_status.stdout, json_status.stderr, table.stdout, table.stderr, runs["logs"][0]]
    texts += [p.read_text(errors="replace") for p in [*run_dir.glob("logs/*"), *run_dir.glob("recordings/*")]]
    assert len(texts) > 10
    for text in texts:
        assert KEY not in text and SECRET not in text


def test_replayed_liquidations_equal_the_recorded_ones(runs):
    """Liquidation messages recorded from the WebSocket (Binance forceOrder, Bybit allLiquidation)
    are pushed again in order by the replay to the second mesh's ccxt.pro clients: the same rows
    (venue time, side, quantity, price, value), and no gap in either run."""
    first, second = runs["first"]["liquidations"], runs["second"]["liquidations"]
    a, b = {tuple(r) for r in first["rows"]}, {tuple(r) for r in second["rows"]}
    assert {r[0].rsplit(".", 1)[1] for r in a} == {"BINANCE", "BYBIT"}, sorted(a)
    assert a <= b, sorted(a - b)
    # a message recorded right before the signal may not have been stored by run 1
    assert all(r[1] >= runs["signal_ns"] - TAIL_NS - 2_000_000_000 for r in b - a), sorted(b - a)  # T precedes the push
    assert len(b) == len(second["rows"])  # no row doubled
    assert first["gaps"] == [] and second["gaps"] == []
