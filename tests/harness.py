"""Shared by the integration tests: a topology in a temp dir, the real mesh as a process, and
the catalog read back through NautilusTrader in a fresh process."""

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from emulator.process import spawn_emulator

ROOT = Path(__file__).resolve().parents[1]

SYMBOLS = {
    "binance": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
    "bybit": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
    "hyperliquid": ["BTC/USDC:USDC", "ETH/USDC:USDC"],
}


def write_topology(tmp: Path, *, venues: dict[str, list[str]] | None = None, oi_s: float = 1.0, funding_s: float = 2.0, flush_s: float = 1.0, **extra) -> Path:
    """A topology with a unique mesh name (abstract ipc endpoints are machine-global)."""
    topo = {
        "mesh": f"t{uuid.uuid4().hex[:10]}",
        "catalog": str(tmp / "catalog"),
        "run_dir": str(tmp / "run"),
        "venues": [
            {"venue": v, "symbols": s, "open_interest_interval_s": oi_s, "funding_interval_s": funding_s}
            for v, s in (venues or SYMBOLS).items()
        ],
        "writer": {"flush_interval_s": flush_s},
        # 1 s polls ask Hyperliquid for ~2.5x its real allowance: tests of rate limits run their own emulator.
        # The six reference coins: 1 s polls of a full universe's bulk answers (Bybit's 566 tickers,
        # Hyperliquid's 229 contexts, every second) would load this shared machine for nothing;
        # tests/integration/test_emulator_universe.py and the `symbols: all` tests use the full one.
        **extra,
        "sandbox": {"rate_limits": False, "universe": "core", **extra.get("sandbox", {})},
    }
    path = tmp / "topology.yaml"
    path.write_text(yaml.safe_dump(topo))
    return path


def start_mesh(topology: Path, *args: str) -> subprocess.Popen:
    log = open(topology.parent / "mesh.stderr", "wb")
    return subprocess.Popen([sys.executable, "-m", "actors.coordinator", *args, str(topology)], cwd=ROOT, stderr=log, stdout=log)


def stop_mesh(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 15.0) -> float:
    """Signal the coordinator; returns the seconds it took to exit."""
    started = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout)
    return time.monotonic() - started


def mesh_log(topology: Path) -> str:
    return (topology.parent / "mesh.stderr").read_text(errors="replace")


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


_READ_CATALOG = r"""
import json, math, sys
from pathlib import Path
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import OpenInterest, FundingRateInfo, FundingSettlement, query_funding_rates
cat = ParquetDataCatalog(sys.argv[1])
unwrap = lambda r: getattr(r, "data", r)  # custom data comes wrapped in CustomData
nan = lambda x: None if isinstance(x, float) and math.isnan(x) else x
out = {
  "open_interest": [[str(r.instrument_id), r.ts_event, r.ts_init, r.open_interest, r.open_interest_value] for r in map(unwrap, cat.query(OpenInterest))],
  "open_interest_source": [[str(r.instrument_id), r.ts_event, r.source, r.period_s] for r in map(unwrap, cat.query(OpenInterest))],
  # one instrument per query (query_funding_rates): 1.231 labels a multi-instrument query with one id
  "funding": [[str(r.instrument_id), r.ts_event, r.ts_init, str(r.rate), r.interval, r.next_funding_ns]
              for r in query_funding_rates(cat)],
  # settled funding: its own series (FundingRateUpdate and FundingRateInfo hold live estimates)
  "funding_settlements": [[str(r.instrument_id), r.ts_event, r.ts_init, r.rate, r.interval_minutes, r.rate_annualized, r.rate_8h, nan(r.mark_price)]
                          for r in map(unwrap, cat.query(FundingSettlement))],
  "funding_info": [[str(r.instrument_id), r.ts_event, r.rate, r.interval_minutes, r.next_funding_ns, nan(r.predicted_rate), nan(r.mark_price), nan(r.index_price), r.settled] for r in map(unwrap, cat.query(FundingRateInfo))],
  "instruments": {str(i.id): {"raw_symbol": str(i.raw_symbol), "price_increment": str(i.price_increment), "size_increment": str(i.size_increment), "base": str(i.base_currency), "quote": str(i.quote_currency), "settlement": str(i.settlement_currency)} for i in cat.instruments()},
}
print(json.dumps(out))
"""


def read_catalog(path: Path) -> dict:
    """Everything in the catalog, loaded by the real ParquetDataCatalog in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _READ_CATALOG, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_emulator(tmp: Path, venues: str = "binance,bybit,hyperliquid", seed: int = 7, *extra: str,
                   universe: str = "core") -> tuple[subprocess.Popen, dict[str, str], Path]:
    """`python -m emulator` in tmp: (process, venue URLs, ground-truth file); its log is tmp/emulator.stderr.
    The six reference coins unless `universe="full"` (see write_topology)."""
    truth = tmp / "ground_truth.jsonl"
    emu = spawn_emulator(tmp / "emulator.json", "--venues", venues, "--seed", str(seed), "--ground-truth", str(truth),
                         "--universe", universe, *extra,
                         log=tmp / "emulator.stderr", cwd=ROOT, poll_s=0.05)
    return emu.proc, emu.urls, truth


def free_port_url() -> str:
    """A URL on a loopback port nobody listens on (a venue that is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"
