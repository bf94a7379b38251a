"""Daemon backfill (FR-007) end to end: the sandbox mesh with `backfill_lookback: 2d`, real ccxt
against the emulator, the rows through validator and writer, the catalog read back by
NautilusTrader in a fresh process and compared with the emulator's ground truth; then a second
start on the same catalog must ask the venues for nothing it already stored.

The writer flushes only every 60 s here, so during the first run every top-up (every second)
sees a catalog without the history it sent: only the collector's memory keeps it from asking
again, and the ground truth shows whether it did (every history row served exactly once).
"""

import json
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from actors.coverage import read_table
from emulator.ground_truth import load_ground_truth
from tests.harness import mesh_log, read_catalog, start_mesh, stop_mesh, wait_for, write_topology

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
    for iid, ts, ts_init, amount, value in runs["catalog"]["open_interest"]:
        if ts % STEP_NS == 0:  # history rows sit on the 5-minute grid; polled rows carry the venue clock
            stored.setdefault(iid, {})[ts] = (amount, value)
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
    for iid, ts, rate, interval, next_ns, predicted, mark, index, is_settled in catalog["funding_info"]:
        if is_settled:
            settled.setdefault(iid, {})[ts] = (rate, interval, next_ns, mark)
    builtin = {(r[0], r[1]) for r in catalog["funding"]}  # Nautilus's own FundingRateUpdate holds them too
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
        for ts, (rate, interval, next_ns, mark) in mine.items():
            t = by_ts[ts]
            assert (rate, interval) == (t["rate"], t["interval_minutes"]) and not next_ns, (iid, ts)  # unknown: 0
            if venue == "BINANCE":
                assert mark == t["mark_price"]
            assert (iid, ts) in builtin


def test_second_start_asks_only_for_what_is_not_stored(runs):
    first, second, truth, catalog = runs["first"], runs["second"], runs["truth"], runs["catalog"]
    stored = {("open_interest_history", iid, ts) for iid, ts, *_ in catalog["open_interest"] if ts % STEP_NS == 0}
    stored |= {("funding_history", r[0], r[1]) for r in catalog["funding_info"] if r[8]}
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

