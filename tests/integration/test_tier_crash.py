"""Tier merges of the open day (storage/tiers.py) in a real writer flush process, killed with
SIGKILL in the middle of them. Ground truth: the rows of the flushes the test made
(`flush_events`: the values each instrument's rows must have), loaded back through the real
ParquetDataCatalog.

Every directory holds four sealed files of the day (the append bound is made small, 5 KB, so
that a test-sized catalog has them); the killed flush adds a fifth, which makes the four due
for a merge right after its rows are committed. After the kill: the catalog loads with every row
stored once (the flush's rows included: they were committed before any merge), each directory
either merged or as it was; the next start clears the stage, and the next flush merges the rest.
"""

import shutil
import signal
from collections import Counter
from pathlib import Path

import pytest

from storage import files as cf
from storage.compaction import Compactor
from storage.dirswap import stage_root
from storage.store import CatalogStore
from tests.integration.flush_child import flush_events
from tests.integration.test_flush_crash import flush_process, leftovers, once, rows, wait_paused

APPEND = 5_000
T1 = 1_760_000_000_000_000_000  # 2025-10-09T08:53:20Z: the template's four flushes of 200 minutes
MIN = 60_000_000_000
T2 = T1 + 4 * 200 * MIN  # the killed flush, 22:13 the same day
T3 = T2 + MIN  # the flush after the restart
INSTRUMENTS = 30


def truth(instruments: int, times: list[int]) -> Counter:
    """What `flush_events(instruments, t)` for each t must read back as (see test_flush_crash.rows)."""
    ids = [(i, f"C{i}USDT-PERP.BINANCE") for i in range(instruments)]
    return Counter([("oi", iid, t, 1000.0 + i) for t in times for i, iid in ids]
                   + [("rate", t, round(1e-4 * (i % 7), 12)) for t in times for i, _ in ids]
                   + [("info", iid, t, 100.0 + i) for t in times for i, iid in ids])


def file_counts(root: Path) -> Counter:
    return Counter(len(cf.list_files(d)) for d in (root / "data").glob("*/*"))


@pytest.fixture
def template(tmp_path, monkeypatch):
    monkeypatch.setattr(cf, "APPEND_MAX_BYTES", APPEND)
    root = tmp_path / "template"
    store = CatalogStore(root, append_same_day=True)
    template_times = []
    for flush in range(4):  # 200 rows per directory each: a sealed file per flush
        times = [T1 + (flush * 200 + m) * MIN for m in range(200)]
        store.write([e for t in times for e in flush_events(INSTRUMENTS, t)])
        template_times += times
    directories = list((root / "data").glob("*/*"))
    assert len(directories) == 3 * INSTRUMENTS
    for d in directories:
        files = cf.list_files(d)
        assert len(files) == 4 and all(Path(f.path).stat().st_size >= APPEND for f in files), d
    assert rows(root) == truth(INSTRUMENTS, template_times)
    return root, template_times


@pytest.mark.parametrize("step", ["staged", "linked", "exchange"])
def test_kill_9_inside_a_tier_merge_loses_and_doubles_nothing(tmp_path, template, step):
    source, template_times = template
    root = tmp_path / f"kill-{step}"
    shutil.copytree(source, root)
    half = 3 * INSTRUMENTS // 2
    proc = flush_process(root, INSTRUMENTS, step, half, APPEND, T2)
    assert wait_paused(proc) == f"PAUSED {step} {half}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    stored = truth(INSTRUMENTS, template_times + [T2])  # the flush committed its rows before merging
    as_killed = rows(root)
    assert once(as_killed) and as_killed == stored, "a row lost or doubled as killed"
    counts = file_counts(root)
    assert set(counts) <= {2, 5} and counts[2] >= half - 1 and counts[5] >= 1, counts  # merged or as it was

    CatalogStore(root, append_same_day=True)  # the writer's next start: its store and its compactor
    Compactor(root)
    assert rows(root) == stored and not leftovers(root)
    assert not [p for p in stage_root(root).rglob("*") if p.is_file()]

    CatalogStore(root, append_same_day=True).write(flush_events(INSTRUMENTS, T3))  # the next flush merges the rest
    assert rows(root) == truth(INSTRUMENTS, template_times + [T2, T3])
    assert file_counts(root) == Counter({2: 3 * INSTRUMENTS}), "one merged file and the day's small one each"
