"""Consolidation of closed periods (storage/compaction.py), without Nautilus: layout, rows kept
exactly, size bound, idempotence, incremental updates, the writer's bounded steps.

tests/integration/test_compaction_crash.py loads the results through `ParquetDataCatalog`, kills
a real compaction at every step and reads while one runs.
"""

import calendar
import os
from pathlib import Path

import pyarrow as pa
import pytest

from messages.events import Liquidation, OpenInterest
from storage import files as cf
from storage.batches import build_tables
from storage.compaction import Compactor, Cutoffs, Job, plan
from storage.dirswap import stage_root
from storage.schema import LIQUIDATION, LIQUIDATION_SCHEMA, OPEN_INTEREST, OPEN_INTEREST_SCHEMA
from storage.store import CatalogStore

NS = 1_000_000_000
HOUR, DAY = 3600 * NS, 86_400 * NS
BTC = "BTCUSDT-PERP.BINANCE"


def utc(*ymd_hms: int) -> int:
    return calendar.timegm((*ymd_hms, 0, 0, 0)[:6]) * NS


NOW = utc(2026, 1, 15, 12)  # the tests' "now": January 2026 is the open month, the 15th the open day


def oi(ts: int, value: float = 1.0) -> OpenInterest:
    return OpenInterest(venue="binance", symbol="BTCUSDT", instrument_id=BTC, ts_event=ts, ts_recv=ts,
                        open_interest=value, open_interest_value=value * 100)


def put(root: Path, events: list, kind: str = OPEN_INTEREST) -> str:
    """Write `events` as one new file (as a flush or a history chunk does), no merging."""
    (table,) = [t for (k, _), t in build_tables(events).items() if k == kind]
    directory = Path(root) / "data" / kind / BTC
    directory.mkdir(parents=True, exist_ok=True)
    return cf.replace_files(directory, table, durable=False)


def files(root: Path, kind: str = OPEN_INTEREST) -> list[cf.DataFile]:
    return cf.list_files(Path(root) / "data" / kind / BTC)


def table(root: Path, kind: str = OPEN_INTEREST, schema: pa.Schema = OPEN_INTEREST_SCHEMA) -> pa.Table:
    return cf.read_files(files(root, kind), schema)


def compact(root: Path, now: int = NOW, **kw) -> Compactor:
    compactor = Compactor(root, durable=False, budget_s=60, now_ns=lambda: now, **kw)
    while compactor.step():
        pass
    return compactor


def test_four_years_of_daily_files_become_one_file_per_month(tmp_path):
    days = (utc(2026, 1, 1) - utc(2022, 1, 1)) // DAY  # 1,461 days (2024 is a leap year)
    for d in range(days):
        put(tmp_path, [oi(utc(2022, 1, 1) + d * DAY + h * HOUR, float(d * 24 + h)) for h in range(24)])
    before = table(tmp_path)
    assert len(files(tmp_path)) == days

    compactor = compact(tmp_path)

    after = files(tmp_path)
    assert len(after) == 48 and cf.intervals_disjoint(after)
    for f in after:  # each file holds exactly one month, from its first hour to its last
        assert Cutoffs.at(NOW).period(f.start) == Cutoffs.at(NOW).period(f.end) == f.start
    assert table(tmp_path).equals(before)  # every row, unchanged, nothing doubled
    assert [(r.files_before, r.files_after) for r in compactor.done] == [(days, 48)]
    assert not list(stage_root(tmp_path).rglob("*.parquet"))
    assert compact(tmp_path).done == []  # nothing left to do


def test_closed_days_of_this_month_one_file_each_and_the_open_day_untouched(tmp_path):
    for day in range(1, 16):  # Jan 1..15, three flush files each (the 15th is today)
        for third in range(3):
            put(tmp_path, [oi(utc(2026, 1, day) + (third * 8 + h) * HOUR) for h in range(2)])
    today = [f for f in files(tmp_path) if f.start >= utc(2026, 1, 15)]
    inodes = {f.path: os.stat(f.path).st_ino for f in today}

    compact(tmp_path)

    after = files(tmp_path)
    assert len(after) == 14 + 3
    assert [f.start for f in after[:14]] == [utc(2026, 1, d) for d in range(1, 15)]
    assert {f.path: os.stat(f.path).st_ino for f in after[14:]} == inodes  # today's files: the same files
    assert table(tmp_path).num_rows == 15 * 6


def test_a_file_across_period_boundaries_is_split_into_its_periods(tmp_path):
    """A history chunk from Nov 20 to Jan 3: November and December (closed months) and the
    closed days Jan 1..3 of the open month each get their own file."""
    rows = [oi(utc(2025, 11, 20) + h * 6 * HOUR, float(h)) for h in range(4 * 44 + 1)]  # to Jan 3 00:00
    put(tmp_path, rows)
    before = table(tmp_path)

    compact(tmp_path)

    starts = [f.start for f in files(tmp_path)]
    assert starts == [utc(2025, 11, 20), utc(2025, 12, 1), utc(2026, 1, 1), utc(2026, 1, 2), utc(2026, 1, 3)]
    assert table(tmp_path).equals(before)


def test_a_busy_month_is_split_into_size_bounded_files_and_stays_so(tmp_path):
    ms = 1_000_000
    events = [Liquidation(venue="bybit", symbol="BTCUSDT", instrument_id=BTC, ts_event=utc(2025, 6, 1) + i * 7 * ms * 60_000,
                          ts_recv=utc(2025, 6, 1) + i * 7 * ms * 60_000, side="LONG", quantity=1.0, price=100.0 + i, value=100.0 + i)
              for i in range(3_500)]
    for chunk in range(10):
        put(tmp_path, events[chunk * 350:(chunk + 1) * 350], LIQUIDATION)
    before = table(tmp_path, LIQUIDATION, LIQUIDATION_SCHEMA)

    compact(tmp_path, max_rows=1_000)

    after = files(tmp_path, LIQUIDATION)
    assert [pa.parquet.read_metadata(f.path).num_rows for f in after] == [1_000, 1_000, 1_000, 500]
    assert table(tmp_path, LIQUIDATION, LIQUIDATION_SCHEMA).equals(before)
    assert plan(Path(after[0].path).parent, Cutoffs.at(NOW), 1_000) == []  # idempotent
    assert compact(tmp_path, max_rows=1_000).done == []


def test_an_update_inside_a_consolidated_month_replaces_its_rows_and_keeps_the_layout(tmp_path):
    for d in range(61):  # Nov and Dec 2025, a file a day
        put(tmp_path, [oi(utc(2025, 11, 1) + d * DAY + h * HOUR) for h in range(24)])
    compact(tmp_path)
    assert len(files(tmp_path)) == 2

    store = CatalogStore(tmp_path, durable=False, append_same_day=True)  # the writer's mode
    store.write([oi(utc(2025, 11, 10, 5), 42.0), oi(utc(2025, 11, 10, 5) + 1, 43.0), oi(utc(2025, 12, 31, 23), 44.0)])

    after = files(tmp_path)
    assert len(after) == 2 and cf.intervals_disjoint(after)
    t = table(tmp_path)
    assert t.num_rows == 61 * 24 + 1
    values = dict(zip(t["ts_init"].to_pylist(), t["open_interest"].to_pylist(), strict=True))
    assert values[utc(2025, 11, 10, 5)] == 42.0 and values[utc(2025, 11, 10, 5) + 1] == 43.0
    assert values[utc(2025, 12, 31, 23)] == 44.0
    assert len(t["ts_init"].unique()) == t.num_rows


def test_the_writers_steps_are_short_and_a_flush_between_them_restarts_the_directory(tmp_path):
    for d in range(20):
        put(tmp_path, [oi(utc(2025, 12, 1) + d * DAY + m * 60 * NS) for m in range(0, 1440, 2)])
    compactor = Compactor(tmp_path, durable=False, budget_s=0.0, now_ns=lambda: NOW, pass_every_s=0.0)
    assert compactor.step()  # plans the directory
    assert compactor.step()  # one row group
    # A flush lands a late row inside the month being consolidated: the job must not lose it.
    CatalogStore(tmp_path, durable=False, append_same_day=True).write([oi(utc(2025, 12, 5, 0, 1) + 1, 7.0)])
    steps = 0
    while compactor.step():
        steps += 1
    assert steps >= 18  # 20 files of one row group: about one per step, not the whole month at once
    assert compactor.done == []  # this pass gave up on the directory (its files changed meanwhile)
    assert len(files(tmp_path)) == 20
    compact(tmp_path)
    assert len(files(tmp_path)) == 1 and table(tmp_path).num_rows == 20 * 720 + 1


def test_a_flush_between_any_two_steps_is_never_left_behind_by_the_exchange(tmp_path):
    """The writer flushes between two compaction steps. The directory's other files are linked
    into the stage right before the exchange: a flush after the links and before the exchange
    would stay in the old directory (deleted with the stage) and its rows would be lost."""
    for d in range(3):  # closed days of the open month: work for the compactor
        put(tmp_path, [oi(utc(2026, 1, 1) + d * DAY + h * HOUR) for h in range(0, 24, 12)])
        put(tmp_path, [oi(utc(2026, 1, 1) + d * DAY + h * HOUR) for h in range(1, 24, 12)])
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)  # the writer's mode
    compactor = Compactor(tmp_path, durable=False, budget_s=0.0, now_ns=lambda: NOW, pass_every_s=1e9)
    flushed = 0
    while compactor.step() or flushed == 0:  # a flush of today's OI after every step
        store.write([oi(NOW + flushed * 60 * NS, float(flushed))])
        flushed += 1
    assert flushed >= 5 and len(compactor.done) == 1 and len(files(tmp_path)) == 4  # 3 closed days + today
    values = table(tmp_path)["open_interest"].to_pylist()
    assert len(values) == 12 + flushed and values[12:] == [float(i) for i in range(flushed)]


def test_an_interrupted_compactions_stage_is_cleared_on_start(tmp_path):
    put(tmp_path, [oi(utc(2025, 12, 1))])
    junk = stage_root(tmp_path) / OPEN_INTEREST / BTC
    junk.mkdir(parents=True)
    (junk / "2025-12-01T00-00-00-000000000Z_2025-12-01T00-00-00-000000000Z.parquet").write_bytes(b"x")
    Compactor(tmp_path, durable=False)
    assert not junk.exists()


@pytest.mark.parametrize("where", ["open day", "empty catalog"])
def test_nothing_to_do_writes_nothing(tmp_path, where):
    if where == "open day":
        put(tmp_path, [oi(NOW - HOUR)])
        put(tmp_path, [oi(NOW - 1)])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert compact(tmp_path).done == [] and Job(tmp_path, OPEN_INTEREST, BTC, Cutoffs.at(NOW)).groups == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_derivs_compact_reports_progress_and_a_summary_and_dry_run_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from cli.main import cli

    for d in range(40):  # 40 daily files in closed months (whatever today is: 2025 is over)
        put(tmp_path, [oi(utc(2025, 3, 10) + d * DAY + h * HOUR) for h in range(24)])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    dry = CliRunner().invoke(cli, ["compact", "--catalog", str(tmp_path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{OPEN_INTEREST}/{BTC}: 40 files in 2 runs to consolidate" in dry.output
    assert "would consolidate 1 directories (40 files); nothing written" in dry.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before

    run = CliRunner().invoke(cli, ["compact", "--catalog", str(tmp_path)])
    assert run.exit_code == 0, run.output
    assert f"{OPEN_INTEREST}/{BTC}: 40 files -> 2 (960 rows)" in run.output  # March and April
    assert "consolidated 1 directories: 40 files -> 2" in run.output
    assert len(files(tmp_path)) == 2 and table(tmp_path).num_rows == 960


def test_derivs_compact_refuses_a_catalog_a_writer_holds(tmp_path):
    from click.testing import CliRunner

    from cli.main import cli
    from storage.lock import CatalogLock

    put(tmp_path, [oi(utc(2025, 3, 10))])
    with CatalogLock(tmp_path, {"kind": "writer", "mesh": "m"}) as lock:
        lock.acquire(timeout_s=1)
        result = CliRunner().invoke(cli, ["compact", "--catalog", str(tmp_path)])
    assert result.exit_code == 1
    assert "being written by the writer of mesh 'm'" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(cli, ["compact", "--catalog", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such directory" in missing.output


def test_a_file_system_without_directory_exchange_turns_compaction_off_and_changes_nothing(tmp_path, monkeypatch):
    import storage.compaction as sc
    from storage.dirswap import SwapUnsupported

    def refuse(a, b):
        raise SwapUnsupported(22, "this file system cannot exchange directories")

    monkeypatch.setattr(sc, "exchange", refuse)
    for d in range(3):
        put(tmp_path, [oi(utc(2025, 3, 1) + d * DAY)])
    before = table(tmp_path)
    compactor = compact(tmp_path, pass_every_s=0.0)
    assert compactor.off and compactor.done == [] and not compactor.step()
    assert len(files(tmp_path)) == 3 and table(tmp_path).equals(before)
    assert not [p for p in stage_root(tmp_path).rglob("*") if p.is_file()]
