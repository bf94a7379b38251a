"""A writer's flush over many directories (storage/durability.py: every new file written first,
then a few syncs of the file system for all of them), in a real process killed with SIGKILL at
each step of the batched commit. Ground truth: the rows the test stored and the rows of the
killed flush (`flush_events`), loaded back through the real ParquetDataCatalog.

After every kill: the catalog loads with no row doubled and nothing foreign; once recovered
(`CatalogStore` on the next start) every row stored before the flush is there exactly once, and
every row of the flush once its commit point (the second sync) had passed; writing the flush
again (what the writer does from its WAL, which it truncates only after the flush returned)
leaves exactly the rows of both, in one file per directory.
"""

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from messages.nautilus import FundingRateInfo, OpenInterest
from storage import files as cf
from storage.store import CatalogStore
from tests.integration.flush_child import flush_events

ROOT = Path(__file__).parents[2]
T1 = 1_760_000_000_000_000_000  # the stored flush
T2 = T1 + 60_000_000_000  # the killed one, a minute later the same day: it appends to each day's file
NEW = 20  # instruments the killed flush adds: directories whose first file is a plain rename


def rows(root: Path) -> Counter:
    """What a Nautilus user reads, as a multiset of comparable tuples (a doubled row counts 2).

    Funding rate updates without their instrument: ParquetDataCatalog 1.231's query of that
    built-in type over many instruments gave every row the first one's id (the custom types
    keep theirs), so they are compared by time and rate.
    """
    catalog = ParquetDataCatalog(str(root))
    oi = [("oi", x.data.instrument_id.value, x.data.ts_init, x.data.open_interest) for x in catalog.query(OpenInterest)]
    rate = [("rate", x.ts_init, round(float(x.rate), 12)) for x in catalog.query(FundingRateUpdate)]
    info = [("info", x.data.instrument_id.value, x.data.ts_init, x.data.mark_price) for x in catalog.query(FundingRateInfo)]
    return Counter(oi + rate + info)


def once(found: Counter) -> bool:
    """No row doubled (rates excepted: several instruments share one)."""
    return all(n == 1 for row, n in found.items() if row[0] != "rate")


def expected(root: Path, instruments: int, t: int, first: int = 0) -> Counter:
    """The rows `flush_events` become, read back from a catalog of their own (the store's own
    conversion, checked against the events themselves below)."""
    CatalogStore(root, durable=False).write(flush_events(instruments, t, first))
    got = rows(root)
    ids = [f"C{i}USDT-PERP.BINANCE" for i in range(first, first + instruments)]
    assert got == Counter([("oi", iid, t, 1000.0 + i) for i, iid in enumerate(ids, first)]
                          + [("rate", t, round(1e-4 * (i % 7), 12)) for i in range(first, first + instruments)]
                          + [("info", iid, t, 100.0 + i) for i, iid in enumerate(ids, first)])
    return got


def flush_process(root: Path, instruments: int, step: str, n: int, append_max_bytes: int | None = None,
                  t: int = T2) -> subprocess.Popen:
    extra = [str(append_max_bytes)] if append_max_bytes else []
    return subprocess.Popen([sys.executable, "-m", "tests.integration.flush_child", str(root), str(instruments),
                             str(t), step, str(n), *extra], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def wait_paused(proc: subprocess.Popen) -> str:
    for line in proc.stderr:  # blocks until a line or EOF: a condition, not a sleep
        if line.startswith("PAUSED "):
            return line.strip()
    raise AssertionError(f"the flush ended (exit {proc.wait(timeout=60)}) before its pause")


def leftovers(root: Path) -> Counter:
    return Counter(p.suffix for p in (root / "data").rglob(".*") if p.is_file())


@pytest.mark.parametrize("instruments", [pytest.param(150, id="150"),
                                         pytest.param(1000, id="1000", marks=pytest.mark.slow)])
def test_kill_9_inside_a_batched_flush_loses_and_doubles_nothing(tmp_path, instruments):
    template = tmp_path / "template"
    CatalogStore(template).write(flush_events(instruments, T1))
    before = expected(tmp_path / "truth-before", instruments, T1)
    assert rows(template) == before
    flush = expected(tmp_path / "truth-flush", instruments + NEW, T2)
    directories = 3 * (instruments + NEW)
    half = directories // 2
    # (step, n, committed: every row of the flush is there once recovered)
    points = [("add", half, False), ("sync", 1, False), ("replace", half, False),
              ("sync", 2, True), ("unlink", half, True), ("sync", 3, True)]
    for step, n, committed in points:
        root = tmp_path / f"kill-{step}-{n}"
        shutil.copytree(template, root)
        proc = flush_process(root, instruments + NEW, step, n)
        assert wait_paused(proc) == f"PAUSED {step} {n}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        where = f"killed after {step} #{n}"
        if step in ("add", "sync") and n == 1 or step == "add":
            assert leftovers(root)[".tmp"] > 0, where  # it really stopped inside the flush

        as_killed = rows(root)  # before any recovery
        assert once(as_killed) and as_killed <= before + flush, f"{where}: a row doubled or foreign"

        CatalogStore(root, append_same_day=True)  # the writer's next start recovers every directory
        recovered = rows(root)
        assert once(recovered) and recovered <= before + flush, f"{where}: a row doubled after recovery"
        assert before <= recovered, f"{where}: rows lost after recovery"
        if committed:
            assert recovered == before + flush, where
        assert not leftovers(root), where

        CatalogStore(root, append_same_day=True).write(flush_events(instruments + NEW, T2))  # the WAL's replay
        assert rows(root) == before + flush, where
        counts = {len(cf.list_files(d)) for d in (root / "data").glob("*/*")}
        assert counts == {1}, f"{where}: {counts} files per directory"
        shutil.rmtree(root)
