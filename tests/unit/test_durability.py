"""storage/durability.py: a flush's replacements stay invisible `.tmp` files until `commit()`,
which puts every one in place (superseded files gone); `discard()` leaves the old files as they were.
Real files in tmp_path, read back with pyarrow."""

import os

import pyarrow as pa
import pyarrow.parquet as pq

from storage import files as cf
from storage.durability import Deferred, sync_filesystem
from storage.store import CatalogStore
from tests.integration.flush_child import flush_events

T = 1_760_000_000_000_000_000


def _table(*ts: int) -> pa.Table:
    return pa.table({"ts_init": pa.array(ts, pa.uint64()), "value": pa.array([float(t % 1000) for t in ts])})


def test_replacements_wait_for_commit_then_land_together(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    old = cf.replace_files(a, _table(T, T + 1))  # a stored file, superseded by the merge below
    deferred = Deferred(tmp_path)
    merged = cf.replace_files(a, _table(T, T + 1, T + 2), [cf.list_files(a)[0]], deferred=deferred)
    new = cf.replace_files(b, _table(T + 5), deferred=deferred)  # a first file: supersedes nothing
    assert [f.path for f in cf.list_files(a)] == [old] and cf.list_files(b) == []  # readers still see the old state
    assert deferred.holds(a) and deferred.holds(b) and not deferred.holds(tmp_path / "c")
    deferred.commit()
    assert [f.path for f in cf.list_files(a)] == [merged] and [f.path for f in cf.list_files(b)] == [new]
    assert pq.read_table(merged)["ts_init"].to_pylist() == [T, T + 1, T + 2]
    assert sorted(os.listdir(a)) == [os.path.basename(merged)]  # no .tmp/.commit left, the old file gone


def test_discard_leaves_the_old_files(tmp_path):
    old = cf.replace_files(tmp_path, _table(T))
    deferred = Deferred(tmp_path)
    cf.replace_files(tmp_path, _table(T, T + 1), [cf.list_files(tmp_path)[0]], deferred=deferred)
    deferred.discard()
    assert os.listdir(tmp_path) == [os.path.basename(old)]


def test_a_store_write_commits_before_it_returns(tmp_path):
    store = CatalogStore(tmp_path, append_same_day=True)
    for minute in range(3):
        written = store.write(flush_events(5, T + minute * 60_000_000_000))
        assert sorted(written.values()) == [1] * 15
    hidden = [p for p in (tmp_path / "data").rglob(".*") if p.is_file()]
    assert hidden == [] and store._deferred is None
    for d in (tmp_path / "data").glob("*/*"):  # appended: one file per directory and day, three rows
        (f,) = cf.list_files(d)
        assert pq.read_table(f.path)["ts_init"].to_pylist() == [T, T + 60_000_000_000, T + 120_000_000_000]


def test_sync_filesystem_names_a_missing_path(tmp_path):
    try:
        sync_filesystem(tmp_path / "gone")
    except FileNotFoundError as exc:
        assert "gone" in str(exc)
    else:
        raise AssertionError("no error for a missing path")
