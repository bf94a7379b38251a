"""Shared by tests/nautilus/test_live_*.py: examples/live_node.py as its own process, its output
read as it arrives, and the catalog's rows read back by ParquetDataCatalog in a fresh process."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.harness import ROOT, write_topology

NODE = ROOT / "examples" / "live_node.py"

_READ_CATALOG = r"""
import json, sys
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from live.convert import as_dict
from messages.nautilus import FundingRateInfo, FundingRateUpdate, Gap, Liquidation, OpenInterest, query_funding_rates
cat = ParquetDataCatalog(sys.argv[1])
rows = [r.data for cls in (OpenInterest, FundingRateInfo, Liquidation, Gap) for r in cat.query(cls)] + query_funding_rates(cat)
print(json.dumps([{"type": type(r).__name__, "fields": as_dict(r)} for r in rows]))
"""


def live_topology(tmp: Path) -> Path:
    """The sandbox mesh with liquidations on Binance and Bybit, fast polls."""
    path = write_topology(tmp, oi_s=1.0, funding_s=2.0, flush_s=1.0)
    topo = yaml.safe_load(path.read_text())
    for venue in topo["venues"]:
        venue["liquidations"] = venue["venue"] in ("binance", "bybit")
    path.write_text(yaml.safe_dump(topo))
    return path


class Node:
    """examples/live_node.py in its own process; stdout (Nautilus's log, then the counts) to a file."""

    def __init__(self, topology: Path, name: str, *args: str) -> None:
        self.out = topology.parent / f"{name}.out"
        self.record = topology.parent / f"{name}.jsonl"
        self.proc = subprocess.Popen([sys.executable, str(NODE), str(topology), "--record", str(self.record), *args],
                                     cwd=ROOT, stdout=open(self.out, "wb"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def log(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> dict:
        """SIGINT (the node stops itself and prints its counts); the counts as a dict."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout)
        assert self.proc.returncode == 0, self.log()[-3000:]
        return json.loads(self.log().strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]


def catalog_rows(catalog: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", _READ_CATALOG, str(catalog)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def post(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as r:
        return json.loads(r.read())


def key(record: dict) -> str:
    """A row's identity for comparison: its type and every stored field."""
    return json.dumps([record["type"], record["fields"]], sort_keys=True)
