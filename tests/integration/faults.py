"""Helpers of the fault tests: a sandbox mesh under liquidation load, bin/ctl, and the catalog's
liquidations and gaps compared with the emulator's ground truth."""

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import yaml

from tests.harness import ROOT, start_mesh, wait_for

LIQ_VENUES = {"BYBIT": "LINEAR.BYBIT", "BINANCE": "PERP.BINANCE"}

_READ = r"""
import json, sys
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import Gap, Liquidation, OpenInterest
cat = ParquetDataCatalog(sys.argv[1])
print(json.dumps({
  "liquidations": [[str(r.data.instrument_id), r.data.ts_event, r.data.side, r.data.quantity, r.data.price] for r in cat.query(Liquidation)],
  "gaps": [[str(r.data.instrument_id), r.data.stream, r.data.ts_event, r.data.end_ns, r.data.reason] for r in cat.query(Gap)],
  "open_interest": [[str(r.data.instrument_id), r.data.ts_event] for r in cat.query(OpenInterest)],
}))
"""


def read_liquidations(catalog: Path) -> dict:
    """Liquidations, gaps and OI timestamps, loaded by the real ParquetDataCatalog in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _READ, str(catalog)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def count_liquidations_arrow(catalog: Path, instrument_id: str, start_ns: int, end_ns: int) -> int:
    """Liquidations of one instrument with ts_init in [start_ns, end_ns], counted in pyarrow
    (what `nautilus_count` must agree with; no Python object per row, for millions of rows)."""
    import pyarrow.dataset as ds

    rows = ds.dataset(catalog / "data" / "custom_liquidation" / instrument_id, format="parquet")
    ts = ds.field("ts_init")
    return rows.count_rows(filter=(ts >= start_ns) & (ts <= end_ns))


def compare_arrow(truth_path: Path, catalog: Path, venue: str, before_ns: int, symbols=("BTCUSDT", "ETHUSDT")) -> dict:
    """`compare` for millions of rows, in pyarrow (the soak: Python dicts of 3.6 M truth lines
    outgrew 24 GB). Counts, plus up to 10 examples of each kind of difference."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.json as pj

    fields = {"venue": pa.string(), "kind": pa.string(), "raw_symbol": pa.string(), "ts_ms": pa.int64(),
              "side": pa.string(), "qty": pa.float64(), "price": pa.float64(), "sent_ns": pa.int64(),
              "connections": pa.int64()}
    truth = pj.read_json(truth_path, parse_options=pj.ParseOptions(
        explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"))
    truth = truth.filter(pc.and_(pc.and_(pc.equal(truth["kind"], "liquidation"), pc.equal(truth["venue"], venue)),
                                 pc.is_in(truth["raw_symbol"], pa.array(symbols))))
    suffix = "-" + LIQ_VENUES[venue]
    keyed = pa.table({"instrument_id": pc.binary_join_element_wise(truth["raw_symbol"], suffix, ""),
                      "ts_event": pc.multiply(truth["ts_ms"], 1_000_000), "side": truth["side"],
                      "quantity": truth["qty"], "price": truth["price"], "sent_ns": truth["sent_ns"],
                      "connections": truth["connections"]})
    keys = ["instrument_id", "ts_event", "side", "quantity", "price"]
    connected = keyed.filter(pc.greater(keyed["connections"], 0))["sent_ns"]
    first_ns = pc.min(connected).as_py() if len(connected) else before_ns
    expected = keyed.filter(pc.and_(pc.greater_equal(keyed["sent_ns"], first_ns), pc.less(keyed["sent_ns"], before_ns)))
    stored = ds.dataset(catalog / "data" / "custom_liquidation", format="parquet").to_table(columns=keys)
    stored = stored.filter(pc.ends_with(stored["instrument_id"], "." + venue)).cast(
        pa.schema([(k, expected.schema.field(k).type) for k in keys]))
    counts = stored.group_by(keys).aggregate([([], "count_all")])
    gap_path = catalog / "data" / "custom_gap"
    gaps = ds.dataset(gap_path, format="parquet").to_table().to_pylist() if gap_path.is_dir() else []
    gaps = [g for g in gaps if g["stream"] == "liquidations" and g["instrument_id"].endswith("." + venue)]
    missing = expected.select(keys).join(counts, keys, join_type="left anti").to_pylist()
    in_gap = lambda r: any(g["instrument_id"] == r["instrument_id"] and g["ts_event"] <= r["ts_event"] <= g["end_ns"]  # noqa: E731
                           for g in gaps)
    duplicates = counts.filter(pc.greater(counts["count_all"], 1))
    extra = counts.join(keyed.select(keys), keys, join_type="left anti")
    return {"expected": expected.num_rows, "stored": stored.num_rows,
            "missing": [r for r in missing if not in_gap(r)], "missing_in_gaps": sum(map(in_gap, missing)),
            "duplicates": duplicates.num_rows, "duplicate_examples": duplicates.slice(0, 10).to_pylist(),
            "extra": extra.num_rows, "extra_examples": extra.slice(0, 10).to_pylist(), "gaps": len(gaps)}


_COUNT = r"""
import sys
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import Liquidation
cat = ParquetDataCatalog(sys.argv[1])
print(len(cat.query(Liquidation, identifiers=[sys.argv[2]], start=int(sys.argv[3]), end=int(sys.argv[4]))))
"""


def nautilus_count(catalog: Path, instrument_id: str, start_ns: int, end_ns: int) -> int:
    """Liquidations of one instrument with ts_init in [start_ns, end_ns], via the real ParquetDataCatalog."""
    done = subprocess.run([sys.executable, "-c", _COUNT, str(catalog), instrument_id, str(start_ns), str(end_ns)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


class LoadedMesh:
    """The sandbox mesh with liquidation streams on Binance and Bybit and OI on Hyperliquid."""

    def __init__(self, tmp: Path, *, restart: dict | None = None, run_dir: Path | None = None,
                 catalog: Path | None = None, emulator_file: Path | None = None, venue_extra: dict | None = None,
                 writer: dict | None = None):
        venues = {"binance": ["BTC/USDT:USDT", "ETH/USDT:USDT"], "bybit": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
                  "hyperliquid": ["BTC/USDC:USDC"]}
        self.run_dir, self.catalog = run_dir or tmp / "run", catalog or tmp / "catalog"
        topo = {
            "mesh": f"f{uuid.uuid4().hex[:10]}", "catalog": str(self.catalog), "run_dir": str(self.run_dir),
            "venues": [{"venue": v, "symbols": s, "open_interest_interval_s": 1.0, "funding_interval_s": 5.0,
                        "liquidations": v != "hyperliquid", **(venue_extra or {})} for v, s in venues.items()],
            "writer": {"flush_interval_s": 1.0, **(writer or {})},
            "restart": restart or {"backoff_initial_s": 0.3, "backoff_max_s": 2, "max_restarts": 10, "window_s": 60},
        }
        # 1 s polls exceed Hyperliquid's real allowance; the reference coins only (see tests/harness.py)
        topo["sandbox"] = {"rate_limits": False, "universe": "core"}
        if emulator_file:
            topo["sandbox"].update(start_emulator=False, emulator_file=str(emulator_file))
        self.topology = tmp / "topology.yaml"
        self.topology.write_text(yaml.safe_dump(topo))
        self.tmp = tmp
        self.emulator_file = emulator_file or self.run_dir / "emulator.json"
        self.truth_path = self.run_dir / "emulator" / "ground_truth.jsonl"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "LoadedMesh":
        self.proc = start_mesh(self.topology, "--sandbox")
        wait_for(lambda: self.emulator_file.exists(), 30, what="the emulator")
        self.urls = json.loads(self.emulator_file.read_text())
        wait_for(lambda: all(a["state"] == "running" and a["events_in"] for a in self.status() if a["name"] == "writer"),
                 30, 0.3, "the writer's first events")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()

    # -- control -----------------------------------------------------------------------------

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "actors.ctl", "--topology", str(self.topology), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def status(self) -> list[dict]:
        return json.loads(self.ctl("status", "--json").stdout)

    def actor(self, name: str) -> dict:
        return next(a for a in self.status() if a["name"] == name)

    def kill9(self, name: str) -> int:
        """kill -9 one actor and wait until the coordinator has restarted it; returns the new pid."""
        old = self.actor(name)["pid"]
        os.kill(old, 9)
        return wait_for(lambda: (a := self.actor(name))["state"] == "running" and a["pid"] not in (None, old) and a["pid"],
                        20, 0.1, f"{name} restarted")

    def liquidation_rate(self, venue: str, per_second: float) -> None:
        post(self.urls[venue], f"/_emulator/liquidation_rate?per_second={per_second}")

    # -- ground truth ------------------------------------------------------------------------

    def truth(self) -> list[dict]:
        return [json.loads(line) for line in self.truth_path.read_text().splitlines() if '"liquidation"' in line]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited


def post(base: str, path: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(base + path, method="POST"), timeout=10) as r:
        return json.loads(r.read())


def instrument_id(rec: dict) -> str:
    return f"{rec['raw_symbol']}-{LIQ_VENUES[rec['venue']]}"


def key_of_truth(rec: dict) -> tuple:
    return (instrument_id(rec), rec["ts_ms"] * 1_000_000, rec["side"], rec["qty"], rec["price"])


def compare(truth: list[dict], stored: dict, venue: str, before_ns: int, symbols=("BTCUSDT", "ETHUSDT")) -> dict:
    """Ground truth of `venue` (the subscribed `symbols`) pushed before `before_ns` against the catalog.

    Returns missing (outside every recorded gap), missing_in_gaps, extra (stored, never pushed)
    and duplicates (the same liquidation stored twice).
    """
    rows = [tuple(r) for r in stored["liquidations"] if r[0].endswith("." + venue)]
    counts = Counter(rows)
    truth = [r for r in truth if r["venue"] == venue and r["raw_symbol"] in symbols]
    pushed = {key_of_truth(r) for r in truth}
    gaps = [(g[0], g[2], g[3]) for g in stored["gaps"] if g[1] == "liquidations" and g[0].endswith("." + venue)]
    in_gap = lambda k: any(iid == k[0] and start <= k[1] <= end for iid, start, end in gaps)  # noqa: E731
    # What the venue published before our first subscription is nobody's loss; after it, every
    # liquidation counts, including those pushed while no socket of ours was connected.
    first_ns = min((r["sent_ns"] for r in truth if r["connections"]), default=before_ns)
    expected = {key_of_truth(r) for r in truth if first_ns <= r["sent_ns"] < before_ns}
    missing = [k for k in expected if k not in counts]
    return {
        "expected": len(expected),
        "stored": len(rows),
        "missing": [k for k in missing if not in_gap(k)],
        "missing_in_gaps": [k for k in missing if in_gap(k)],
        "extra": [k for k in counts if k not in pushed],
        "duplicates": [k for k, n in counts.items() if n > 1],
        "gaps": gaps,
    }


def settle_and_stop(mesh: LoadedMesh, sig: int, quiet_s: float = 2.0) -> tuple[int, float]:
    """Stop the load, let the last events through, signal the coordinator; (signal ns, exit s)."""
    for venue in ("bybit", "binance"):
        mesh.liquidation_rate(venue, 0)
    time.sleep(quiet_s)
    # A backlog left by the faults drains first: this stop tests what was lost, not a race with it.
    try:
        wait_for(lambda: all(a["queue_depth"] == 0 for a in mesh.status() if a["name"].startswith("collector.") and a["pid"]),
                 60, 0.2, "the collectors' backlog to be acknowledged")
    except AssertionError as exc:  # say which actor held what, and keep its logs for the report
        raise AssertionError(f"{exc}; status: {mesh.status()}; logs in {mesh.run_dir / 'logs'}") from None
    signal_ns = time.time_ns()
    started = time.monotonic()
    mesh.proc.send_signal(sig)
    mesh.proc.wait(30)
    return signal_ns, time.monotonic() - started
