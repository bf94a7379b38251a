"""Parquet files of one catalog directory: where it is, names, intervals, merging, crash-safe
replacement.

A directory `data/<kind>/<instrument_id>/` (`data_directory`) holds files named
`<first ts_init>_<last ts_init>.parquet`, each time as `2024-01-02T03-04-05-000000000Z` (UTC,
9-digit nanoseconds; Nautilus's `_timestamps_to_filename`).
`ParquetDataCatalog` 1.231 lists `*.parquet` (dot-files included), trusts the names for time
filtering, requires the closed intervals to be disjoint, and does not de-duplicate rows. So
every write here keeps the intervals disjoint and never leaves a partial file under a
`.parquet` name: temporary files are `.<final name>.tmp` / `.<final name>.commit`, which the
catalog's glob does not match.

Crash safety of a merge that supersedes files (see `replace_files`):

1. write the merged rows to `.F.tmp`, fsync;  (crash: a stray .tmp, deleted on recovery;
   the old files are untouched)
2. rename it to `.F.commit`, fsync the directory - the commit point: from here the merged
   file is durable and complete, and recovery finishes the job;
3. delete the superseded files (all lie inside F's interval) except one named F;
   (crash: the catalog misses those rows until recovery, but sees no overlap, no duplicate)
4. rename `.F.commit` to `F` (atomically replacing an old F), fsync the directory.

Deleting before renaming trades a short gap (rows invisible between 3 and 4, restored by
`recover` on the writer's next write or start) for never showing overlapping intervals, which
would make Nautilus return duplicate rows and refuse its own writes to the directory. When
nothing but F itself is superseded (the common case: a new file, or rows inside one file), the
single atomic rename of step 4 is the whole change and there is no window at all.
"""

import calendar
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.durability import Deferred, unlink_if_exists
from storage.legacy import conform
from storage.periods import by_month, split_rows
from messages.timeunits import NS

ROWS_PER_GROUP = 5_000  # ParquetDataCatalog's default max_rows_per_group
_FILE_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{1,9})Z$")
TMP_SUFFIX = ".tmp"
COMMIT_SUFFIX = ".commit"


# -- names --------------------------------------------------------------------------------------


def file_timestamp(ns: int) -> str:
    """UNIX ns -> `YYYY-MM-DDTHH-MM-SS-nnnnnnnnnZ` (Nautilus's file-name form of ISO 8601)."""
    seconds, nanos = divmod(ns, NS)
    return time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(seconds)) + f"-{nanos:09d}Z"


def parse_file_timestamp(text: str) -> int | None:
    match = _FILE_TS.match(text)
    if match is None:
        return None
    *date_time, fraction = match.groups()
    seconds = calendar.timegm(tuple(int(x) for x in date_time) + (0, 0, 0))
    return seconds * NS + int(fraction.ljust(9, "0"))


def file_name(start_ns: int, end_ns: int) -> str:
    return f"{file_timestamp(start_ns)}_{file_timestamp(end_ns)}.parquet"


class DataFile(NamedTuple):
    start: int  # first ts_init, ns
    end: int  # last ts_init, ns (closed interval)
    # A str, not a Path: Python 3.12.0-3.12.5's pathlib interns every path part it parses, and
    # interned strings there are never freed (CPython gh-113993), so the writer would keep every
    # file name it ever made (+9 MB/h in the 60-minute soak). File names below are str for the same reason.
    path: str


def parse_file_name(name: str) -> tuple[int, int] | None:
    """`<start>_<end>.parquet` -> (start, end); None for any other name."""
    if not name.endswith(".parquet") or name.startswith("."):
        return None
    first, _, last = name[: -len(".parquet")].partition("_")
    start, end = parse_file_timestamp(first), parse_file_timestamp(last)
    if start is None or end is None:
        return None
    return start, end


def list_files(directory: Path) -> list[DataFile]:
    """The data files of one directory, ordered by interval start."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    files = []
    for name in names:
        interval = parse_file_name(name)
        if interval is not None:
            files.append(DataFile(*interval, os.path.join(directory, name)))
    return sorted(files)


def overlapping(files: Iterable[DataFile], start: int, end: int) -> list[DataFile]:
    """Files whose closed interval meets [start, end]."""
    return [f for f in files if f.start <= end and f.end >= start]


def intervals_disjoint(files: list[DataFile]) -> bool:
    ordered = sorted(files)
    return all(a.end < b.start for a, b in zip(ordered, ordered[1:], strict=False))


# -- reading and merging (pure table logic) ------------------------------------------------------


def read_files(files: Iterable[DataFile], schema: pa.Schema) -> pa.Table:
    """Rows of `files` in `schema` (a file Nautilus wrote with int64 timestamps is cast, a column
    an older file lacks is derived: `storage.legacy.conform`)."""
    tables = [conform(pq.read_table(f.path), schema) for f in files]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables).sort_by("ts_init")


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    """Element-wise equality where null == null and NaN == NaN."""
    if pa.types.is_dictionary(a.type):
        a, b = a.cast(a.type.value_type), b.cast(b.type.value_type)
    eq = pc.fill_null(pc.equal(a, b), False)
    if pa.types.is_floating(a.type):
        eq = pc.or_(eq, pc.and_(pc.is_nan(a), pc.is_nan(b)))
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(eq, both_null)


def merge_tables(existing: pa.Table, new: pa.Table) -> tuple[pa.Table, int]:
    """Union of two tables keyed by ts_init (each sorted, unique keys); `new` wins a clash.

    Returns the merged table (sorted by ts_init) and how many rows of `new` were not already
    stored as they are (new keys plus changed rows) - 0 means the merge changes nothing.
    """
    new = new.cast(existing.schema) if new.schema != existing.schema else new
    new_keys, old_keys = new["ts_init"], existing["ts_init"]
    clash_in_old = pc.is_in(old_keys, value_set=new_keys.combine_chunks())
    clash_in_new = pc.is_in(new_keys, value_set=old_keys.combine_chunks())
    fresh = new.num_rows - pc.sum(clash_in_new).as_py() if new.num_rows else 0
    # Both sides sorted with unique keys, so the clashing rows line up one to one.
    old_clash, new_clash = existing.filter(clash_in_old), new.filter(clash_in_new)
    changed = 0
    if old_clash.num_rows:
        same = None
        for name in existing.schema.names:
            column_same = _same(old_clash[name], new_clash[name])
            same = column_same if same is None else pc.and_(same, column_same)
        changed = old_clash.num_rows - pc.sum(same).as_py()
    if fresh + changed == 0:
        return existing, 0
    kept = existing.filter(pc.invert(clash_in_old))
    merged = pa.concat_tables([kept, new]).sort_by("ts_init")
    return merged, fresh + changed


def place_distinct(existing: pa.Table, new: pa.Table, first_slot, next_slot) -> pa.Table:
    """`new` re-keyed so that no row replaces a *different* stored row (liquidations: rows never
    change, so a clash is another event of the same instant, never a correction).

    Linear probing over stored and placed rows: each row walks from `first_slot(row)` by
    `next_slot` to its identical twin (a re-send: the merge then adds nothing) or to a free slot.
    Rows are never removed, so a re-sent row walks the same occupied slots to the same place.
    When no key of `new` is stored, its keys (probed within the batch the same way) stand.
    """
    clash = pc.is_in(new["ts_init"], value_set=existing["ts_init"].combine_chunks())
    if not pc.any(clash).as_py():
        return new
    content = [c for c in new.schema.names if c != "ts_init"]
    # Every slot lies in its row's ms: only the stored rows of the new rows' ms can be walked over.
    ms = pc.divide(existing["ts_init"], 1_000_000)
    near = existing.filter(pc.is_in(ms, value_set=pc.unique(pc.divide(new["ts_init"], 1_000_000))))
    taken = {r["ts_init"]: tuple(r[c] for c in content) for r in near.to_pylist()}
    placed = []
    for row in new.to_pylist():
        mine, slot = tuple(row[c] for c in content), first_slot(row)
        while slot in taken and taken[slot] != mine:
            slot = next_slot(slot)
        if slot not in taken:
            taken[slot] = mine
            placed.append({**row, "ts_init": slot})
    return pa.Table.from_pylist(sorted(placed, key=lambda r: r["ts_init"]), schema=new.schema)


# -- crash-safe writing -------------------------------------------------------------------------


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Head(NamedTuple):
    """A stored file re-written with new rows: its leading row groups are copied as they are."""

    file: DataFile
    copied: int  # leading row groups that hold only rows before the new ones


def _write_parquet(table: pa.Table, path: str, durable: bool, head: Head | None = None) -> None:
    """`table` to `path`; with `head`, that file's first `head.copied` row groups come first.

    They are copied one group at a time, so re-writing a big file (late rows in a merged tier
    file) holds one group in memory instead of the whole file.
    """
    with pq.ParquetWriter(path, table.schema) as writer:
        if head is not None and head.copied:
            with pq.ParquetFile(head.file.path) as source:
                for i in range(head.copied):
                    group = conform(source.read_row_group(i), table.schema)
                    writer.write_table(group, row_group_size=ROWS_PER_GROUP)
        writer.write_table(table, row_group_size=ROWS_PER_GROUP)
    if durable:
        with open(path, "rb+") as f:
            os.fsync(f.fileno())


def split_at(file: DataFile, schema: pa.Schema, start: int) -> tuple[Head, pa.Table]:
    """`file` as the row groups that end before `start`'s ms (copied unchanged) and the rows of
    the others (its tail, to be merged with the new rows from `start` on).

    Only the tail can hold a key of a new row: rows are sorted, and a liquidation probes for a
    free slot only within its own ms. The last group always goes to the tail, so that a partly
    filled one is re-packed with the new rows and the groups stay full (ROWS_PER_GROUP) as in a
    file written in one go. A group without statistics goes to the tail (never wrongly copied).
    """
    before = start - start % 1_000_000
    with pq.ParquetFile(file.path) as source:
        meta = source.metadata
        column = meta.schema.names.index("ts_init")
        copied = 0
        while copied < meta.num_row_groups - 1:
            stats = meta.row_group(copied).column(column).statistics
            if stats is None or not stats.has_min_max or stats.max >= before:
                break
            copied += 1
        tail = conform(source.read_row_groups(range(copied, meta.num_row_groups)), schema)
    return Head(file, copied), tail


def replace_files(directory: Path, table: pa.Table, superseded: Iterable[DataFile] = (), durable: bool = True,
                  head: Head | None = None, deferred: Deferred | None = None) -> str:
    """Write `table` as one file named by its first/last ts_init, replacing `superseded`.

    Every superseded file must lie inside the new file's interval (its rows are in `table`).
    `head.file`, whose rows not copied (see `split_at`) are in `table`, is superseded too.
    See the module docstring for the order of steps and why a crash is safe at any point. With
    `deferred` only `.F.tmp` is written; `deferred.commit()` does the rest for a whole flush.
    """
    if table.num_rows == 0:
        raise ValueError("refusing to write an empty file")
    ts = table["ts_init"]
    first = min(head.file.start, ts[0].as_py()) if head else ts[0].as_py()  # new rows may come before the head's
    name = file_name(first, ts[-1].as_py())
    final = os.path.join(directory, name)
    others = [f for f in [*superseded, *([head.file] if head else [])] if f.path != final]
    tmp = os.path.join(directory, f".{name}{TMP_SUFFIX}")
    try:
        _write_parquet(table, tmp, durable and deferred is None, head)
    except BaseException:
        unlink_if_exists(tmp)  # disk full mid-write: leave no partial file behind
        raise
    if deferred is not None:
        deferred.add(tmp, os.path.join(directory, f".{name}{COMMIT_SUFFIX}"), final, [f.path for f in others])
        return final
    if others:
        commit = os.path.join(directory, f".{name}{COMMIT_SUFFIX}")
        os.replace(tmp, commit)
        if durable:
            fsync_dir(directory)
        _finish_commit(commit, final, others, durable)
    else:
        os.replace(tmp, final)
        if durable:
            fsync_dir(directory)
    return final


def _finish_commit(commit: str, final: str, superseded: Iterable[DataFile], durable: bool) -> None:
    for f in superseded:
        unlink_if_exists(f.path)
    os.replace(commit, final)
    if durable:
        fsync_dir(os.path.dirname(final))


def recover(directory: Path, durable: bool = True) -> int:
    """Finish or roll back an interrupted `replace_files` in `directory`; returns actions taken.

    A `.tmp` was never committed (the old files are intact): delete it. A `.commit` is a
    complete merged file: delete the files inside its interval and move it into place.
    """
    actions = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(".") and name.endswith(TMP_SUFFIX):
            unlink_if_exists(os.path.join(directory, name))
            actions += 1
    for name in names:
        if not (name.startswith(".") and name.endswith(COMMIT_SUFFIX)):
            continue
        final_name = name[1 : -len(COMMIT_SUFFIX)]
        interval = parse_file_name(final_name)
        if interval is None:
            continue
        first, last = interval
        inside = [f for f in list_files(directory) if first <= f.start and f.end <= last]
        _finish_commit(os.path.join(directory, name), os.path.join(directory, final_name), inside, durable)
        actions += 1
    return actions


def merge_into(directory: Path, new: pa.Table, durable: bool = True, append_same_day: bool = False,
               slots: tuple | None = None, deferred: Deferred | None = None) -> int:
    """Merge `new` (sorted, unique ts_init) into the directory; returns rows added or changed.

    The rows go into one file together with every existing file they overlap (their hull can
    meet no other file, since the files are disjoint). Re-writing stored rows changes nothing.
    With `slots` ((first_slot, next_slot), for liquidations) a different row on a stored key is
    another row and is placed by `place_distinct`.

    When the rows meet one file (or, appending, follow the day's file), only that file's tail
    from the rows' start on is read and merged; its earlier row groups are streamed through
    (see `split_at`). The writer's flushes take this path: a flush costs one or two row groups
    of reading, not the whole day's file, even when its first rows share a millisecond with
    the last stored ones. With `deferred`, the new file is committed by `deferred.commit()`.
    """
    if new.num_rows == 0:
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    if deferred is None or not deferred.holds(directory):  # a month's .tmp of this merge stays
        recover(directory, durable)
    start, end = new["ts_init"][0].as_py(), new["ts_init"][-1].as_py()
    files = list_files(directory)
    touched = overlapping(files, start, end)
    if len(touched) > 1 and len(parts := by_month(touched)) > 1:  # across consolidated months: month by month
        return sum(merge_into(directory, rows, durable, append_same_day, slots, deferred) for rows in split_rows(new, parts))
    head, superseded, existing = None, (), new.schema.empty_table()
    if len(touched) > 1:  # rows spanning several files (a back-fill): merged whole
        superseded, existing = touched, read_files(touched, new.schema)
    elif touched:
        head, existing = split_at(touched[0], new.schema, start)
    elif append_same_day and (day_file := _same_day_predecessor(files, start, end)):
        head, existing = split_at(day_file, new.schema, start)
    if slots is not None:
        new = place_distinct(existing, new, *slots)
    merged, changed = merge_tables(existing, new)
    if changed:
        replace_files(directory, merged, superseded, durable, head, deferred)  # it supersedes the head's file itself
    return changed


# Appending re-writes the file: past this size (about a row group of liquidations) a new file
# starts, merged in tiers later (storage/tiers.py), so that a flush costs its rows, not the day's
# file (appending 30 rows: 2.5 ms to a new file, 5.7 ms at 128 KB, 15 at 512 KB, 170 at 2.6 MB).
APPEND_MAX_BYTES = 128 << 10


def _same_day_predecessor(files: list[DataFile], start: int, end: int) -> DataFile | None:
    """The newest file before `start`, if it and the new rows all lie in one UTC day and it is
    smaller than APPEND_MAX_BYTES.

    Appending into it keeps one file per instrument per day (for the usual rates) while the
    writer flushes every few seconds. The merged hull [f.start, end] meets no other file: f is
    the newest before start and nothing overlaps [start, end].
    """
    before = [f for f in files if f.end < start]
    if not before:
        return None
    latest = max(before, key=lambda f: f.end)
    day_ns = 86_400 * NS
    if latest.start // day_ns != end // day_ns or os.path.getsize(latest.path) >= APPEND_MAX_BYTES:
        return None
    return latest
