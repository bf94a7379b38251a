"""Daemon backfill (FR-007) end to end: the sandbox mesh with `backfill_lookback: 2d`, real ccxt
against the emulator, the rows through validator and writer, the catalog read back by
NautilusTrader in a fresh process and compared with the emulator's ground truth; then a second
start on the same catalog must ask the venues for nothing it already stored.

The writer flushes only every 60 s here, so during the first run every top-up (every second)
sees a catalog without the history it sent: only the collector's memory keeps it from asking
again, and the ground truth shows whether it did (every history row served exactly once).
"""

import json
import math
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from storage.coverage import read_table
from emulator.ground_truth import load_ground_truth
from tests.harness import ROOT, mesh_log, read_catalog, start_mesh, stop_mesh, wait_for, write_topology

NS = 1_000_000_000
MS = 1_000_000
LOOKBACK_NS = 2 * 86_400 * NS
STEP_NS = 300 * NS
SERIES = {  # instrument id -> (ground-truth venue, raw symbol)
    "BTCUSDT-PERP.BINANCE": ("BINANCE", "BTCUSDT"), "ETHUSDT-PERP.BINANCE": ("BINANCE", "ETHUSDT"),
    "BTCUSDT-LINEAR.BYBIT": ("BYBIT", "BTCUSDT"), "ETHUSDT-LINEAR.BYBIT": ("BYBIT", "ETHUSDT"),
    "BTC-USD-PERP.HYPERLIQUID": ("HYPERLIQUID", "BTC"), "ETH-USD-PERP.HYPERLIQUID": ("HYPERLIQUID", "ETH"),
}
OI_SERIES = [iid for iid, (venue, _) in SERIES.items() if venue != "HYPERLIQUID"]
HISTORY_ENDPOINTS = {
    "binance": ["/futures/data/openInterestHist", "/fapi/v1/fundingRate"],
    "bybit": ["/v5/market/open-interest", "/v5/market/funding/history"],
    "hyperliquid": ["info:fundingHistory"],
}


def emulator_stats(tmp: Path) -> dict[str, dict[str, int]]:
    urls = json.loads((tmp / "run" / "emulator.json").read_text())
    out = {}
    for venue, url in urls.items():
        with urllib.request.urlopen(url + "/_emulator/stats", timeout=5) as r:
            out[venue] = json.load(r)["requests"]
    return out


def run_mesh(tmp: Path, topology: Path, top_ups_s: float) -> dict:
    """Start the mesh, wait for the three collectors' first backfill pass (+ `top_ups_s`), stop it."""
    started_ns = time.time_ns()
    proc = start_mesh(topology, "--sandbox")
    try:
        wait_for(lambda: mesh_log(topology).count("backfill done") >= 3, 25, what="the first backfill pass of every collector")
        time.sleep(top_ups_s)
        stats = emulator_stats(tmp)
        signal_ns = time.time_ns()
        stop_mesh(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    return {"started_ns": started_ns, "signal_ns": signal_ns, "stats": stats, "returncode": proc.returncode,
            "log": mesh_log(topology)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backfill")
    topology = write_topology(tmp, oi_s=5.0, funding_s=10.0, flush_s=60.0)
    topo = yaml.safe_load(topology.read_text())
    for v in topo["venues"]:
        v.update(backfill_lookback="2d", backfill_interval_s=1.0)
    topology.write_text(yaml.safe_dump(topo))
    first = run_mesh(tmp, topology, top_ups_s=2.5)
    catalog = read_catalog(tmp / "catalog")  # NautilusTrader, fresh process, before the second start
    second = run_mesh(tmp, topology, top_ups_s=0.5)
    truth = load_ground_truth(tmp / "run" / "emulator" / "ground_truth.jsonl")
    return {"tmp": tmp, "first": first, "second": second, "catalog": catalog, "truth": truth}


def served(run: dict, truth: list[dict], kind: str, venue: str, raw: str) -> list[dict]:
    return [r for r in truth if r["kind"] == kind and r["venue"] == venue and r["raw_symbol"] == raw
            and run["started_ns"] <= r["served_ns"] <= run["signal_ns"] + NS]


def test_both_runs_stop_cleanly(runs):
    for run in (runs["first"], runs["second"]):
        assert run["returncode"] == 0, run["log"][-3000:]
        assert "Traceback" not in run["log"] and "unacknowledged" not in run["log"]
        assert "rejected" not in run["log"].replace("0 rejected", "")
    assert "HYPERLIQUID publishes no open-interest history: backfilling settled funding only" in runs["first"]["log"]


def test_open_interest_history_equals_ground_truth_and_was_asked_once(runs):
    first, truth = runs["first"], runs["truth"]
    stored = {}
    source = {(iid, ts): (src, period) for iid, ts, src, period in runs["catalog"]["open_interest_source"]}
    for iid, ts, ts_init, amount, value in runs["catalog"]["open_interest"]:
        if source[iid, ts][0] == "history":  # every row says where it came from
            assert source[iid, ts][1] == 300 and ts % STEP_NS == 0, (iid, ts, source[iid, ts])
            stored.setdefault(iid, {})[ts] = (amount, value)
        else:
            assert source[iid, ts] == ("poll", 0), (iid, ts, source[iid, ts])
    for iid in OI_SERIES:
        venue, raw = SERIES[iid]
        rows = served(first, truth, "open_interest_history", venue, raw)
        counts = Counter(r["ts_ms"] for r in rows)
        assert counts and max(counts.values()) == 1, f"{iid}: a history row was asked for twice: {counts.most_common(2)}"
        mine = stored.get(iid, {})
        assert set(mine) == {r["ts_ms"] * MS for r in rows}, iid
        # the window: [start - 2 d, start], the venue's own holes (35 min at most) aside
        assert first["started_ns"] - LOOKBACK_NS <= min(mine) <= first["started_ns"] - LOOKBACK_NS + 45 * 60 * NS
        assert max(mine) >= first["started_ns"] - 2 * STEP_NS
        assert len(mine) >= 576 - 7
        if venue == "BINANCE":
            for r in rows:
                assert mine[r["ts_ms"] * MS] == (r["open_interest"], r["open_interest_value"])
        else:  # one side; USD = one side x the mark-price kline's open at the bucket
            marks = {r["ts_ms"]: r["open"] for r in served(first, truth, "mark_price_kline", venue, raw)}
            for r in rows:
                assert mine[r["ts_ms"] * MS] == (r["single_open_interest"], r["single_open_interest"] * marks[r["ts_ms"]])
    assert not any(iid.endswith(".HYPERLIQUID") and ts % STEP_NS == 0 and ts < first["started_ns"]
                   for iid, ts, *_ in runs["catalog"]["open_interest"])


def test_settled_funding_history_equals_ground_truth(runs):
    first, truth, catalog = runs["first"], runs["truth"], runs["catalog"]
    settled: dict[str, dict[int, tuple]] = {}
    for iid, ts, ts_init, rate, interval, yearly, per_8h, mark in catalog["funding_settlements"]:
        assert ts_init == ts and (yearly, per_8h) == (rate * 525_600 / interval, rate * 480 / interval)
        settled.setdefault(iid, {})[ts] = (rate, interval, mark)
    assert not any(r[-1] for r in catalog["funding_info"])  # live estimates only
    live = {(r[0], r[1]) for r in catalog["funding"]}  # Nautilus's own FundingRateUpdate: live estimates
    window_start = first["started_ns"] - LOOKBACK_NS
    for iid, (venue, raw) in SERIES.items():
        rows = served(first, truth, "funding_history", venue, raw)
        assert max(Counter(r["ts_ms"] for r in rows).values()) == 1, f"{iid}: a settlement was asked for twice"
        mine = settled.get(iid, {})
        by_ts = {r["ts_ms"] * MS: r for r in rows}
        assert set(mine) <= set(by_ts), iid
        # everything the venue has in the window is stored (a few seconds of slack at its start)
        assert {t for t in by_ts if window_start + 30 * NS <= t <= first["started_ns"]} <= set(mine), iid
        assert min(mine) >= window_start
        assert len(mine) >= (40 if venue == "HYPERLIQUID" else 5), (iid, len(mine))
        for ts, (rate, interval, mark) in mine.items():
            t = by_ts[ts]
            assert (rate, interval) == (t["rate"], t["interval_minutes"]), (iid, ts)
            if venue == "BINANCE":
                assert mark == t["mark_price"]
            else:
                assert mark is None  # the venue's history has none
            assert (iid, ts) not in live


def test_funding_backtest_books_exactly_the_settlements(runs):
    """examples/funding_backtest.py on the daemon's catalog (two days of settlements from the
    backfill, live estimates from the polls): its payments equal -notional x rate summed over the
    settlement rows read from the Parquet files with pyarrow, and no live estimate is booked."""
    catalog = runs["tmp"] / "catalog"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "funding_backtest.py"), str(catalog),
                           "--notional", "25000", "--side", "long"], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    expected, estimates = {}, {}
    for iid in SERIES:
        rates = [r for f in sorted((catalog / "data" / "custom_funding_settlement" / iid).glob("*.parquet"))
                 for r in pq.read_table(f, columns=["rate"])["rate"].to_pylist()]
        expected[iid] = (len(rates), -25_000 * math.fsum(rates))
        estimates[iid] = sum(pq.read_metadata(f).num_rows for f in (catalog / "data" / "funding_rate_update" / iid).glob("*.parquet"))
    assert {iid: (v["settlements"], v["payments"]) for iid, v in got["instruments"].items()} == {
        iid: (n, pytest.approx(total, rel=1e-12, abs=1e-9)) for iid, (n, total) in expected.items()}
    assert all(n >= 5 for n, _ in expected.values())
    assert {iid: v["live_estimates_seen"] for iid, v in got["instruments"].items()} == estimates  # seen, never booked
    assert all(n > 0 for n in estimates.values())
    assert got["total"] == pytest.approx(math.fsum(t for _, t in expected.values()), rel=1e-12, abs=1e-9)
    assert {v["currency"] for iid, v in got["instruments"].items() if iid.endswith("HYPERLIQUID")} == {"USDC"}
    short = subprocess.run([sys.executable, str(ROOT / "examples" / "funding_backtest.py"), str(catalog),
                            "--notional", "25000", "--side", "short"], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert json.loads(short.stdout.strip().splitlines()[-1])["total"] == pytest.approx(-got["total"], rel=1e-12, abs=1e-9)


def test_second_start_asks_only_for_what_is_not_stored(runs):
    first, second, truth, catalog = runs["first"], runs["second"], runs["truth"], runs["catalog"]
    stored = {("open_interest_history", iid, ts) for iid, ts, *_ in catalog["open_interest"] if ts % STEP_NS == 0}
    stored |= {("funding_history", r[0], r[1]) for r in catalog["funding_settlements"]}
    asked_again = []
    for iid, (venue, raw) in SERIES.items():
        for kind in ("open_interest_history", "funding_history"):
            for r in served(second, truth, kind, venue, raw):
                if (kind, iid, r["ts_ms"] * MS) in stored:
                    asked_again.append((kind, iid, r["ts_ms"]))
    assert not asked_again, f"the second start fetched {len(asked_again)} stored rows, e.g. {asked_again[:3]}"
    # requests: the first start paged through two days; the second asked at most for a new tail
    for venue, endpoints in HISTORY_ENDPOINTS.items():
        for endpoint in endpoints:
            before, after = first["stats"][venue].get(endpoint, 0), second["stats"][venue].get(endpoint, 0)
            assert before >= 2 and after <= 2 and after < before, (venue, endpoint, before, after)
    # and nothing is doubled in the catalog after both runs
    for iid in SERIES:
        for kind in ("oi", "funding"):
            ts = read_table(runs["tmp"] / "catalog", kind, iid)["ts_init"].to_pylist()
            assert len(ts) == len(set(ts)), (iid, kind)


# -- derivs history hands its rows to a running mesh --------------------------------------------------

# Runs `derivs` with an audit hook that logs every write-mode open, rename, removal or mkdir
# under the catalog (pyarrow's own C++ writes are not audited, but every catalog write ends in
# an os.replace, and the direct path opens the lock file for writing).
_AUDITED_CLI = r"""
import os, sys
catalog, log = os.path.realpath(sys.argv[1]), open(sys.argv[2], "w")
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
def hook(event, args):
    if event == "open":
        path, writing = args[0], isinstance(args[2], int) and bool(args[2] & WRITE)
    elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate"):
        path, writing = args[0], True
    else:
        return
    if writing and isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(catalog):
        log.write(f"{event} {os.fsdecode(path)}\n")
        log.flush()
sys.addaudithook(hook)
sys.argv = ["derivs", *sys.argv[3:]]
from cli.main import cli
cli()
"""


def audited_derivs(catalog: Path, audit: Path, *args: str) -> tuple[dict, list[str]]:
    import subprocess
    import sys

    from tests.harness import ROOT

    done = subprocess.run([sys.executable, "-c", _AUDITED_CLI, str(catalog), str(audit), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), audit.read_text().splitlines()


def _day(ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ns // NS))


def test_cli_hands_history_to_the_running_mesh_and_writes_itself_only_without_one(tmp_path):
    from storage.lock import running_writer
    from storage.coverage import query
    from tests.harness import start_emulator

    emu, urls, truth_path = start_emulator(tmp_path, "bybit")
    try:
        topology = write_topology(tmp_path, venues={"bybit": ["BTC/USDT:USDT"]}, oi_s=2.0, funding_s=5.0, flush_s=1.0,
                                  sandbox={"start_emulator": False, "emulator_file": str(tmp_path / "emulator.json")})
        catalog, iid = tmp_path / "catalog", "ETHUSDT-LINEAR.BYBIT"
        day = 86_400 * NS
        now = time.time_ns()
        since, until = _day(now - 40 * day), _day(now - 10 * day)
        common = ["history", "funding", "ETH", "-v", "bybit", "--until", until, "--topology", str(topology),
                  "--emulator", str(tmp_path / "emulator.json"), "--json"]
        proc = start_mesh(topology, "--sandbox")
        try:
            info = wait_for(lambda: running_writer(catalog), 20, what="the mesh's writer holding the catalog lock")
            first, writes = audited_derivs(catalog, tmp_path / "audit1", *common, "--since", since)
            assert (first["via"], first["mesh"]) == ("mesh", info["mesh"]) and not writes, writes
            assert first["written"] == first["fetched"] >= 85
            # in the catalog once the writer has flushed (every second here), written by the writer
            wait_for(lambda: len(query(catalog, "funding", iid, settled=True)) == first["written"], 10,
                     what="the handed-over rows in the catalog")
            assert "cli.history" not in (tmp_path / "run" / "logs" / "validator.log").read_text()  # none refused
            # five days earlier: only those are fetched, again through the mesh
            wider, writes = audited_derivs(catalog, tmp_path / "audit2", *common, "--since", _day(now - 45 * day))
            assert wider["via"] == "mesh" and not writes and 0 < wider["fetched"] <= 16
            assert wider["already_stored"] == first["written"]
        finally:
            stop_mesh(proc)
        assert proc.returncode == 0 and running_writer(catalog) is None
        # no mesh: the CLI writes the catalog itself (the audit hook sees it, so the checks above can fail)
        later = _day(now - 7 * day)
        direct, writes = audited_derivs(catalog, tmp_path / "audit3", *[a if a != until else later for a in common],
                                        "--since", _day(now - 45 * day))
        assert direct["via"] == "direct" and direct["written"] == direct["fetched"] > 0
        assert any(".writer.lock" in w for w in writes) and any(w.startswith("os.rename") for w in writes)
    finally:
        emu.terminate()
        emu.wait(10)
    # NautilusTrader in a fresh process: every settlement the venue has in the range once, as served
    loaded = read_catalog(catalog)
    ts = [r[1] for r in loaded["funding_settlements"] if r[0] == iid]
    assert len(ts) == len(set(ts)) == first["written"] + wider["written"] + direct["written"]
    lo, hi = (now - 45 * day) // day * day, (now - 7 * day) // day * day
    served = {r["ts_ms"] * MS: r["rate"] for r in load_ground_truth(truth_path)
              if r["kind"] == "funding_history" and r["raw_symbol"] == "ETHUSDT" and lo <= r["ts_ms"] * MS < hi}
    assert {r[1]: r[3] for r in loaded["funding_settlements"] if r[0] == iid} == served
