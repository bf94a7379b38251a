"""Live latency into a NautilusTrader strategy: from the emulated venue's liquidation push to the
strategy's `on_data` in a TradingNode fed by the mesh's live data client (live/), at steady rates.

    .venv/bin/python bench/live_latency.py [--rates 100,1000] [--seconds 5] [--keep DIR]

The mesh runs as in production (`bin/launch --sandbox`, Bybit only, as bench/liquidation_latency.py:
it pushes every liquidation, in 500 ms batches); the node is examples/live_node.py in its own
process (`--quiet`: no log line per object, `--record`: each object with `time.time_ns()` at
`on_data`). A rate is liquidations/s over BTCUSDT and ETHUSDT (emulator cascade).

- push: the emulator's `sent_ns` (ground truth), when the batch left for the collector's socket;
- on_data: the strategy's receipt (same machine, same clock);
- tap: a plain SUB on the same bus (bench/liquidation_latency.py's), the mesh's part of the path;
- node: on_data - tap receipt of the same liquidation, the live client's and Nautilus's part.

Path: emulator -> collector (ccxt.pro frames, normalize, outbox) -> validator (decode, check,
publish) -> live bus -> DerivsDataClient (decode, the writer's tables -> Nautilus objects) ->
DataEngine -> Strategy.on_data. Not a test: it prints figures (the machine's load shows in them).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from emulator.ground_truth import load_ground_truth  # noqa: E402
from actors.topology import BusConfig  # noqa: E402
from liquidation_latency import SYMBOLS, Tap, bybit_topology, key_truth, pct, post, read, wait_for, workdir  # noqa: E402

GOAL_P99_MS = 50.0


def node_receipts(record: Path) -> dict[tuple, int]:
    """(instrument, ts_event, side, quantity, price) -> on_data time of every liquidation the node got."""
    out: dict[tuple, int] = {}
    for line in read(record).splitlines():
        r = json.loads(line)
        if r["type"] == "Liquidation":
            f = r["fields"]
            out.setdefault((f["instrument_id"], f["ts_event"], f["side"], f["quantity"], f["price"]), r["recv_ns"])
    return out


def run(tmp: Path, phases: list[tuple[str, float, float]], settle_s: float) -> dict:
    topo, topology = bybit_topology(tmp)
    record, node_out = tmp / "node.jsonl", tmp / "node.out"
    mesh = subprocess.Popen([sys.executable, "-m", "actors.coordinator", "--sandbox", str(topology)], cwd=ROOT,
                            stdout=open(tmp / "mesh.stderr", "wb"), stderr=subprocess.STDOUT)
    node = subprocess.Popen([sys.executable, str(ROOT / "examples" / "live_node.py"), str(topology), "--quiet",
                             "--seconds", "600", "--record", str(record)], cwd=ROOT, stdout=open(node_out, "wb"),
                            stderr=subprocess.STDOUT)
    windows = []
    tap = Tap(BusConfig().endpoint(topo["mesh"], "taps"))  # the bus's own latency, to tell the node's part
    try:
        ready = tmp / "run" / "emulator.json"
        url = json.loads(wait_for(lambda: ready.exists() and read(ready), 60, "the emulator"))["bybit"]
        wait_for(lambda: "liquidations: subscribed" in read(tmp / "run" / "logs" / "collector.bybit.log"), 60, "the subscription")
        post(url + "/_emulator/liquidation_rate?per_second=0")
        wait_for(lambda: read(node_out).count("subscribed to ") >= len(SYMBOLS), 60, "the node's subscriptions")
        tap.start()
        time.sleep(1.0)
        for label, rate, seconds in phases:
            per_symbol = max(1, round(rate * seconds / len(SYMBOLS)))
            start = time.time_ns()
            for s in SYMBOLS:
                post(url + f"/_emulator/cascade?symbol={s}&count={per_symbol}&seconds={seconds}")
            time.sleep(seconds + 0.6)  # the last 500 ms batch
            windows.append((label, rate, start))
            time.sleep(settle_s)
            print(f"  {label}: pushed, drained", file=sys.stderr)
        truth = tmp / "run" / "emulator" / "ground_truth.jsonl"
        pushed = lambda: sum(1 for r in load_ground_truth(truth) if r.get("kind") == "liquidation"  # noqa: E731
                             and r["raw_symbol"] in SYMBOLS and r["connections"] > 0)
        wait_for(lambda: len(tap.first_receipt()) >= pushed(), 120, "the bus to deliver every pushed liquidation")
        time.sleep(2.0)  # the node's own part is milliseconds (see the table): let it finish before stopping it
        node.send_signal(signal.SIGINT)
        node.wait(60)
        mesh.send_signal(signal.SIGINT)
        mesh.wait(30)
    finally:
        tap.stop.set()
        for proc in (node, mesh):
            if proc.poll() is None:
                proc.kill()
    return {"truth": [r for r in load_ground_truth(tmp / "run" / "emulator" / "ground_truth.jsonl")
                      if r.get("kind") == "liquidation" and r["raw_symbol"] in SYMBOLS],
            "node": node_receipts(record), "tap": tap.first_receipt(), "windows": windows, "counts": read(node_out).strip().splitlines()[-1]}


def summarize(obs: dict) -> list[dict]:
    rows = []
    starts = [w[2] for w in obs["windows"]] + [2**63]
    for (label, rate, start), end in zip(obs["windows"], starts[1:]):
        pushed = [r for r in obs["truth"] if start <= r["sent_ns"] < end and r["connections"] > 0]
        got = [(obs["node"][key_truth(r)] - r["sent_ns"]) / 1e6 for r in pushed if key_truth(r) in obs["node"]]
        tap = [(obs["tap"][key_truth(r)] - r["sent_ns"]) / 1e6 for r in pushed if key_truth(r) in obs["tap"]]
        added = [(obs["node"][k] - obs["tap"][k]) / 1e6 for k in map(key_truth, pushed) if k in obs["node"] and k in obs["tap"]]
        occurred = [r["ts_ms"] for r in pushed]
        achieved = len(pushed) / max(1e-3, (max(occurred) - min(occurred)) / 1000) if pushed else 0.0
        rows.append({"phase": label, "target_per_s": rate, "achieved_per_s": achieved, "pushed": len(pushed),
                     "missed": len(pushed) - len(got), "p50_ms": pct(got, 0.5), "p99_ms": pct(got, 0.99),
                     "max_ms": max(got, default=float("nan")),
                     "tap_p50_ms": pct(tap, 0.5), "tap_p99_ms": pct(tap, 0.99),
                     "added_p50_ms": pct(added, 0.5), "added_p99_ms": pct(added, 0.99)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="100,1000", help="Liquidations/s to measure at.")
    ap.add_argument("--seconds", type=float, default=5.0, help="Seconds per rate.")
    ap.add_argument("--keep", default=None, help="Run in this directory and keep it (logs, catalog, records).")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", file=sys.stderr)
    with workdir(args.keep, "bench-live-") as d:
        phases = [(f"{float(r):g}/s", float(r), args.seconds) for r in args.rates.split(",") if r]
        obs = run(Path(d) / "live", phases, settle_s=3.0)
    print("\nLatency: venue push -> Strategy.on_data in a TradingNode (live/ data client)")
    print(f"{'phase':<10} {'target/s':>9} {'pushed/s':>9} {'pushed':>7} {'missed':>7} {'p50':>8} {'p99':>8} {'max':>8}  p99 < {GOAL_P99_MS:.0f} ms  {'tap p50':>8} {'tap p99':>8}  "
          f"{'node p50':>8} {'node p99':>8}")
    for r in summarize(obs):
        print(f"{r['phase']:<10} {r['target_per_s']:>9,.0f} {r['achieved_per_s']:>9,.0f} {r['pushed']:>7,} {r['missed']:>7} "
              f"{r['p50_ms']:>6.1f}ms {r['p99_ms']:>6.1f}ms {r['max_ms']:>6.1f}ms  {'yes' if r['p99_ms'] < GOAL_P99_MS else 'NO':>13}  "
              f"{r['tap_p50_ms']:>6.1f}ms {r['tap_p99_ms']:>6.1f}ms  {r['added_p50_ms']:>6.1f}ms {r['added_p99_ms']:>6.1f}ms")
    print(f"node counts: {obs['counts']}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
