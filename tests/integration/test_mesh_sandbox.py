"""The whole mesh in sandbox mode, end to end: real processes, real ccxt against the emulator,
real ZeroMQ, and the catalog read back by NautilusTrader in a fresh process.

One mesh run (module fixture) serves every test here: it polls OI every 1 s and funding every
2 s for BTC and ETH on all three venues, is stopped with SIGINT, and everything the emulator
served before the signal must be in the catalog, exactly as served.
"""

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.harness import ROOT, mesh_log, read_catalog, start_mesh, stop_mesh, wait_for, write_topology

RUN_S = 8.0
MARGIN_NS = 500_000_000  # a response served this close to the signal may not have been received
INSTRUMENTS = {
    "BTCUSDT-PERP.BINANCE": ("BINANCE", "BTCUSDT"), "ETHUSDT-PERP.BINANCE": ("BINANCE", "ETHUSDT"),
    "BTCUSDT-LINEAR.BYBIT": ("BYBIT", "BTCUSDT"), "ETHUSDT-LINEAR.BYBIT": ("BYBIT", "ETHUSDT"),
    "BTC-USD-PERP.HYPERLIQUID": ("HYPERLIQUID", "BTC"), "ETH-USD-PERP.HYPERLIQUID": ("HYPERLIQUID", "ETH"),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mesh")
    topology = write_topology(tmp)
    proc = start_mesh(topology, "--sandbox")
    try:
        wait_for(lambda: (tmp / "catalog" / "data" / "custom_open_interest").exists(), 30, what="first open interest in the catalog")
        time.sleep(RUN_S)
        signal_ns = time.time_ns()
        exit_s = stop_mesh(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    truth = [json.loads(line) for line in (tmp / "run" / "emulator" / "ground_truth.jsonl").read_text().splitlines()]
    return {
        "tmp": tmp, "topology": topology, "exit_s": exit_s, "returncode": proc.returncode, "signal_ns": signal_ns,
        "catalog": read_catalog(tmp / "catalog"), "truth": truth, "log": mesh_log(topology),
    }


def served(run, venue: str, raw: str, kind: str, endpoint: str | None = None) -> list[dict]:
    """Ground-truth records served before the signal (minus the margin)."""
    return [
        r for r in run["truth"]
        if r["venue"] == venue and r["raw_symbol"] == raw and r["kind"] == kind and (endpoint is None or r["endpoint"] == endpoint)
        and r["served_ns"] < run["signal_ns"] - MARGIN_NS
    ]


def rows_by_instrument(rows: list) -> dict[str, list]:
    out = defaultdict(list)
    for row in rows:
        out[row[0]].append(row)
    return out


def test_sigint_stops_every_process_within_10s_cleanly(run):
    assert run["returncode"] == 0, run["log"][-3000:]
    assert run["exit_s"] <= 10.0
    assert "mesh stopped" in run["log"] and "Traceback" not in run["log"]
    assert "unacknowledged" not in run["log"]  # every collector got all its acks before leaving


def test_every_instrument_has_open_interest_and_funding_rows(run):
    oi, funding = rows_by_instrument(run["catalog"]["open_interest"]), rows_by_instrument(run["catalog"]["funding"])
    for iid in INSTRUMENTS:
        assert len(oi[iid]) >= RUN_S * 0.5, (iid, len(oi[iid]))
        assert len(funding[iid]) >= 2, (iid, len(funding[iid]))
        assert all(r[1] == r[2] for r in oi[iid] + funding[iid])  # ts_init = ts_event
        assert len({r[1] for r in oi[iid]}) == len(oi[iid])  # no doubled row


def test_binance_rows_equal_what_the_venue_served(run):
    cat_oi, cat_fr = rows_by_instrument(run["catalog"]["open_interest"]), rows_by_instrument(run["catalog"]["funding"])
    for iid in ("BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE"):
        _, raw = INSTRUMENTS[iid]
        truth_oi = {r["ts_ms"] * 1_000_000: r for r in served(run, "BINANCE", raw, "open_interest")}
        marks = served(run, "BINANCE", raw, "funding_rate")
        all_marks = [m for m in run["truth"] if m["kind"] == "funding_rate" and m["venue"] == "BINANCE" and m["raw_symbol"] == raw]
        stored = {r[1]: r for r in cat_oi[iid]}
        assert set(truth_oi) <= set(stored), "served open interest missing from the catalog"
        for ts, (_, _, _, amount, value) in stored.items():
            t = next(r for r in run["truth"] if r["kind"] == "open_interest" and r["raw_symbol"] == raw and r["venue"] == "BINANCE" and r["ts_ms"] * 1_000_000 == ts)
            near = [m for m in all_marks if abs(m["served_ns"] - t["served_ns"]) < 200_000_000]
            assert amount == t["open_interest"]
            # USD = OI x the mark price of the premiumIndex answer fetched in the same poll
            assert any(value == pytest.approx(amount * m["mark_price"], rel=1e-12) for m in near), (value, amount, near)
        truth_fr = {r["ts_ms"] * 1_000_000: r for r in run["truth"] if r["venue"] == "BINANCE" and r["raw_symbol"] == raw and r["kind"] == "funding_rate"}
        for _, ts, _, rate, interval, next_ns in cat_fr[iid]:
            t = truth_fr[ts]
            assert (float(rate), interval, next_ns) == (t["rate"], t["interval_minutes"], t["next_funding_ms"] * 1_000_000)
        # every premiumIndex answer before the signal became a funding row or the mark of an OI row
        oi_served = [r["served_ns"] for r in truth_oi.values()]
        for m in marks:
            assert m["ts_ms"] * 1_000_000 in {r[1] for r in cat_fr[iid]} or min(abs(m["served_ns"] - s) for s in oi_served) < 200_000_000


def test_bybit_rows_equal_what_the_venue_served(run):
    cat_oi, cat_fr = rows_by_instrument(run["catalog"]["open_interest"]), rows_by_instrument(run["catalog"]["funding"])
    for iid in ("BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT"):
        _, raw = INSTRUMENTS[iid]
        truth = {r["ts_ms"] * 1_000_000: r for r in run["truth"] if r["venue"] == "BYBIT" and r["raw_symbol"] == raw and r["kind"] == "open_interest"}
        truth_fr = {r["ts_ms"] * 1_000_000: r for r in run["truth"] if r["venue"] == "BYBIT" and r["raw_symbol"] == raw and r["kind"] == "funding_rate"}
        for _, ts, _, amount, value in cat_oi[iid]:
            # tickers' openInterest counts both sides; the catalog stores the one-side figures served
            t = truth[ts]
            assert (amount, value) == (t["single_open_interest"], t["single_open_interest_value"])
            assert t["open_interest"] == 2 * t["single_open_interest"]
        for _, ts, _, rate, interval, next_ns in cat_fr[iid]:
            t = truth_fr[ts]
            assert (float(rate), interval, next_ns) == (t["rate"], t["interval_minutes"], t["next_funding_ms"] * 1_000_000)
        # both polls read tickers: every answer before the signal is an OI row or a funding row
        stored = {r[1] for r in cat_oi[iid]} | {r[1] for r in cat_fr[iid]}
        assert {r["ts_ms"] * 1_000_000 for r in served(run, "BYBIT", raw, "open_interest")} <= stored


def test_hyperliquid_rows_equal_what_the_venue_served(run):
    """Hyperliquid's payload has no timestamp: a row matches the answer served just before it."""
    cat_oi, cat_fr = rows_by_instrument(run["catalog"]["open_interest"]), rows_by_instrument(run["catalog"]["funding"])
    info = rows_by_instrument(run["catalog"]["funding_info"])
    for iid in ("BTC-USD-PERP.HYPERLIQUID", "ETH-USD-PERP.HYPERLIQUID"):
        _, coin = INSTRUMENTS[iid]
        answers = [r for r in run["truth"] if r["venue"] == "HYPERLIQUID" and r["raw_symbol"] == coin and r["endpoint"] == "metaAndAssetCtxs"]
        oi_answers = [r for r in answers if r["kind"] == "open_interest"]
        fr_answers = [r for r in answers if r["kind"] == "funding_rate"]
        predictions = [r for r in run["truth"] if r["venue"] == "HYPERLIQUID" and r["raw_symbol"] == coin and r["endpoint"] == "predictedFundings"]

        def answered_before(ts_ns: int, records: list[dict]) -> dict:
            return max((r for r in records if r["served_ns"] <= ts_ns), key=lambda r: r["served_ns"])

        for _, ts, _, amount, value in cat_oi[iid]:
            t = answered_before(ts, oi_answers)
            assert ts - t["served_ns"] < 1_000_000_000
            assert (amount, value) == pytest.approx((t["open_interest"], t["open_interest"] * t["mark_price"]), rel=1e-12)
        for row in info[iid]:
            _, ts, rate, interval, next_ns, predicted, mark, index, settled = row
            t, p = answered_before(ts, fr_answers), answered_before(ts, predictions)
            assert (rate, interval, predicted, mark, settled) == (t["rate"], 60, p["predicted_rate"], t["mark_price"], False)
            assert next_ns == p["next_funding_ms"] * 1_000_000
        stored = [r[1] for r in cat_oi[iid]] + [r[1] for r in cat_fr[iid]]
        for r in served(run, "HYPERLIQUID", coin, "open_interest", "metaAndAssetCtxs"):
            assert any(0 <= ts - r["served_ns"] < 1_000_000_000 for ts in stored), "an answer before the signal was not stored"


def test_catalog_holds_instrument_definitions_from_the_venues_market_data(run):
    instruments = run["catalog"]["instruments"]
    assert set(INSTRUMENTS) <= set(instruments)
    for iid, (venue, raw) in INSTRUMENTS.items():
        t = next(r for r in run["truth"] if r["venue"] == venue and r["raw_symbol"] == raw and r["kind"] == "instrument")
        inst = instruments[iid]
        assert inst["raw_symbol"] == raw
        if venue == "HYPERLIQUID":  # sizes in szDecimals; prices 6 - szDecimals decimals (Nautilus's rule)
            assert float(inst["size_increment"]) == pytest.approx(10 ** -t["sz_decimals"])
            assert inst["price_increment"] == f"{10 ** -max(0, 6 - t['sz_decimals']):.{max(0, 6 - t['sz_decimals'])}f}"
        else:
            assert float(inst["price_increment"]) == pytest.approx(t["tick_size"]) and float(inst["size_increment"]) == pytest.approx(t["lot_size"])
    assert instruments["BTC-USD-PERP.HYPERLIQUID"]["settlement"] == "USDC" and instruments["BTCUSDT-PERP.BINANCE"]["quote"] == "USDT"


def test_a_backtest_receives_every_stored_row(run):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "backtest_counts.py"), str(run["tmp"] / "catalog")], capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    oi, funding = rows_by_instrument(run["catalog"]["open_interest"]), rows_by_instrument(run["catalog"]["funding"])
    assert counts["open_interest"] == {iid: len(rows) for iid, rows in oi.items()}
    assert counts["funding_rate"] == {iid: len(rows) for iid, rows in funding.items()}
    settlements = rows_by_instrument(run["catalog"]["funding_settlements"])  # none: this mesh does not backfill
    assert counts["funding_settlement"] == {iid: len(settlements.get(iid, [])) for iid in counts["funding_rate"]}


def test_logs_name_actor_venue_and_outcome_per_operation(run):
    logs = Path(run["tmp"]) / "run" / "logs"
    assert {p.name for p in logs.glob("*.log")} >= {"coordinator.log", "writer.log", "validator.log", "collector.binance.log", "collector.bybit.log", "collector.hyperliquid.log"}
    line = next(l for l in (logs / "collector.bybit.log").read_text().splitlines() if "fetch open_interest ok" in l)
    assert "| collector.bybit" in line and "| BYBIT" in line and line[:4].isdigit()
