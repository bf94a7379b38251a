"""A real `derivs compact` process: killed with SIGKILL at many of its steps, and read by
`ParquetDataCatalog` while it runs. Ground truth: the rows the test wrote (read back before).

After every kill the catalog loads through the real ParquetDataCatalog with exactly the rows
written (nothing lost, nothing doubled) before any recovery; a second run finishes the job.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from cli.compact import PAUSE_ENV
from messages.events import Liquidation, OpenInterest
from messages.nautilus import Liquidation as NautilusLiquidation
from messages.nautilus import OpenInterest as NautilusOpenInterest
from storage import files as cf
from storage.batches import build_tables
from storage.dirswap import stage_root
from storage.schema import LIQUIDATION, OPEN_INTEREST

ROOT = Path(__file__).parents[2]
NS, HOUR, DAY = 1_000_000_000, 3_600_000_000_000, 86_400_000_000_000
BTC, ETH = "BTCUSDT-PERP.BINANCE", "ETHUSDT-LINEAR.BYBIT"


def _month_start(ns: int) -> int:
    t = time.gmtime(ns // NS)
    return int(time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0)) - time.timezone) * NS


# Three closed months ending at least a month before today, whatever today is.
START = _month_start(_month_start(time.time_ns()) - 80 * DAY)


def _put(root: Path, events: list, kind: str, iid: str) -> None:
    (table,) = [t for (k, _), t in build_tables(events).items() if k == kind]
    directory = root / "data" / kind / iid
    directory.mkdir(parents=True, exist_ok=True)
    cf.replace_files(directory, table, durable=False)


def make_catalog(root: Path, files_per_series: int, coins: int = 1) -> None:
    """OI of BTC and liquidations of ETH (and of `coins` - 1 more instruments each) over three
    closed months, one small file per chunk."""
    step = 90 * DAY // files_per_series
    gap = step // 24  # 24 rows a file, inside its own stretch: the files stay disjoint
    for c in range(coins):
        btc, eth = (BTC, ETH) if c == 0 else (f"C{c}USDT-PERP.BINANCE", f"C{c}USDT-LINEAR.BYBIT")
        for i in range(files_per_series):
            t = START + i * step
            _put(root, [OpenInterest(venue="binance", symbol="BTCUSDT", instrument_id=btc, ts_event=t + h * gap,
                                     ts_recv=t + h * gap, open_interest=float(i * 100 + h), open_interest_value=1.0)
                        for h in range(24)], OPEN_INTEREST, btc)
            _put(root, [Liquidation(venue="bybit", symbol="ETHUSDT", instrument_id=eth, ts_event=t + h * gap,
                                    ts_recv=t + h * gap, side="SHORT", quantity=1.0 + i, price=2000.0 + h,
                                    value=(1.0 + i) * (2000.0 + h))
                        for h in range(0, 24, 3)], LIQUIDATION, eth)


def rows(root: Path) -> list[tuple]:
    """Everything a Nautilus user reads, as comparable tuples (sorted: a duplicate stays visible)."""
    catalog = ParquetDataCatalog(str(root))
    oi = [(x.data.instrument_id.value, x.data.ts_init, x.data.open_interest) for x in catalog.query(NautilusOpenInterest)]
    liq = [(x.data.instrument_id.value, x.data.ts_init, x.data.quantity, x.data.price)
           for x in catalog.query(NautilusLiquidation)]
    return sorted(oi) + sorted(liq)


def compact_process(root: Path, pause_at: int | None = None) -> subprocess.Popen:
    env = {**os.environ, PAUSE_ENV: str(pause_at or "")}
    return subprocess.Popen([sys.executable, "-m", "cli", "compact", "--catalog", str(root)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def paused_or_done(proc: subprocess.Popen) -> str | None:
    """The label it paused at (it is waiting there), or None once it exited (it finished)."""
    for line in proc.stderr:  # blocks until a line or EOF: a condition, not a sleep
        if line.startswith("PAUSED "):
            return line.split(maxsplit=2)[2].strip()
    assert proc.wait(timeout=60) == 0, proc.stdout.read()
    return None


def directory_files(root: Path) -> dict[str, int]:
    return {kind: len(cf.list_files(root / "data" / kind / iid)) for kind, iid in [(OPEN_INTEREST, BTC), (LIQUIDATION, ETH)]}


def test_kill_9_at_every_kind_of_step_loses_and_doubles_nothing(tmp_path):
    template = tmp_path / "template"
    make_catalog(template, files_per_series=12)
    truth = rows(template)
    assert len(truth) == 12 * 24 + 12 * 8
    # Per directory: 12 reads (one row group per file), "linked", "exchanged"; two directories.
    labels = set()
    for point in [1, 13, 14, 20, 27, 28]:  # a read, linked, exchanged; a read of the 2nd after the 1st committed, ...
        root = tmp_path / f"kill-{point}"
        shutil.copytree(template, root)
        proc = compact_process(root, pause_at=point)
        label = paused_or_done(proc)
        assert label is not None, f"finished before step {point}"
        labels.add(label.split()[0])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

        assert rows(root) == truth, f"killed at step {point} ({label})"  # as it is, before any recovery
        files = directory_files(root)
        assert all(n in (12, 3) for n in files.values()), files  # each directory old or new, never a mix

        finish = compact_process(root)
        assert paused_or_done(finish) is None
        assert rows(root) == truth
        assert directory_files(root) == {OPEN_INTEREST: 3, LIQUIDATION: 3}
        assert not [p for p in stage_root(root).rglob("*") if not p.is_dir()]
        shutil.rmtree(root)
    assert labels == {"read", "linked", "exchanged"}


def test_nautilus_writes_and_reads_a_compacted_directory(tmp_path):
    make_catalog(tmp_path, files_per_series=30)
    truth = rows(tmp_path)
    assert paused_or_done(compact_process(tmp_path)) is None
    assert directory_files(tmp_path) == {OPEN_INTEREST: 3, LIQUIDATION: 3}
    catalog = ParquetDataCatalog(str(tmp_path))
    later = START + 200 * DAY
    catalog.write_data([NautilusOpenInterest(later, later, InstrumentId.from_str(BTC), 5.0, 6.0, "poll", 0)])
    assert rows(tmp_path) == sorted(truth[:30 * 24] + [(BTC, later, 5.0)]) + truth[30 * 24:]


@pytest.mark.timeout(600)
def test_a_reader_during_compaction_never_sees_missing_or_doubled_rows(tmp_path):
    seen: list[int] = []
    errors: list[str] = []
    # On a busy machine one compaction may leave room for few reads: compact fresh copies until
    # enough reads overlapped one (a condition, not a timing assumption).
    for round_ in range(10):
        root = tmp_path / f"round-{round_}"
        make_catalog(root, files_per_series=20, coins=30)  # 60 directories: 60 exchanges to read across
        truth = rows(root)
        proc = compact_process(root)
        done = threading.Event()
        threading.Thread(target=lambda p=proc, d=done: (p.wait(), d.set()), daemon=True).start()
        while not done.is_set():
            try:
                got = rows(root)
            except Exception as exc:  # a query that listed just before the exchange and opened a replaced file after it
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            seen.append(len(got))
            assert got == truth, f"read {len(got)} rows, {len(truth)} stored (after {len(seen)} reads)"
        assert proc.returncode == 0, proc.stderr.read()
        assert directory_files(root) == {OPEN_INTEREST: 3, LIQUIDATION: 3}
        if len(seen) >= 5:
            break
    assert len(seen) >= 5, f"only {len(seen)} reads overlapped 10 compactions"
    assert all("No such file" in e or "FileNotFound" in e or "not found" in e.lower() for e in errors), errors
    print(f"{len(seen)} complete reads during compaction, {len(errors)} failed with a vanished file")


def test_the_mesh_writer_consolidates_closed_months_while_it_collects(tmp_path):
    """A real sandbox mesh on a catalog of small files in closed months: its writer consolidates
    them between flushes, while today's polled rows keep arriving."""
    from tests.harness import mesh_log, start_mesh, stop_mesh, wait_for, write_topology

    topology = write_topology(tmp_path)
    catalog = tmp_path / "catalog"
    make_catalog(catalog, files_per_series=12)
    truth = rows(catalog)
    closed_end = START + 90 * DAY

    def closed_files() -> dict[str, int]:
        return {kind: len([f for f in cf.list_files(catalog / "data" / kind / iid) if f.end < closed_end])
                for kind, iid in [(OPEN_INTEREST, BTC), (LIQUIDATION, ETH)]}

    proc = start_mesh(topology, "--sandbox")
    try:
        wait_for(lambda: closed_files() == {OPEN_INTEREST: 3, LIQUIDATION: 3}, 90, what="closed months consolidated")
        wait_for(lambda: len(cf.list_files(catalog / "data" / OPEN_INTEREST / BTC)) > 3, 60, what="today's polled OI")
        stop_mesh(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, mesh_log(topology)
    after = rows(catalog)
    assert [r for r in after if r[1] < closed_end] == truth  # every stored row once
    assert any(r[0] == BTC and r[1] >= closed_end for r in after)  # and the mesh's own rows beside them
    assert "compacted" in (tmp_path / "run" / "logs" / "writer.log").read_text()


def test_every_kind_the_store_writes_loads_the_same_after_compaction(tmp_path):
    """Instruments, OI, live and settled funding (FundingRateUpdate too), liquidations, gaps:
    what ParquetDataCatalog loads in a fresh process is the same before and after."""
    from storage.store import CatalogStore
    from tests.harness import read_catalog
    from tests.nautilus.test_catalog_loads import batches

    store = CatalogStore(tmp_path, durable=False)
    for batch in batches():
        store.write(batch)
    before_files = len(list((tmp_path / "data").rglob("*.parquet")))
    before = read_catalog(tmp_path)
    assert paused_or_done(compact_process(tmp_path)) is None
    assert read_catalog(tmp_path) == before
    assert len(list((tmp_path / "data").rglob("*.parquet"))) < before_files
