"""Consolidation of closed periods: a catalog directory keeps one file per closed month (or a few,
size-bounded) and one per closed day of the current month, whatever wrote it (the writer's
flushes, history downloads in chunks, Nautilus's own `write_data`).

Target layout of `data/<kind>/<instrument>/` (`plan` finds the files that differ from it):

- a file lies in one period: a UTC month if the month is over, else a UTC day if the day is
  over; the open day is the writer's (small files appended to, then tiers: storage/tiers.py);
- a period's rows are in ceil(rows / MAX_ROWS_PER_FILE) files, MAX_ROWS_PER_FILE each but the
  last (so a month of a liquidation cascade is a few ~30 MB files, not one huge one).

A directory's work is a `Job`: its rows are streamed one row group at a time (memory stays at a
row group, every step is short) into new files in `<catalog>/.compaction/<kind>/<instrument>/`,
the directory's other files are hard-linked beside them, and the two directories are exchanged
atomically (storage/dirswap.py). The commit point is that exchange: a `kill -9` before it leaves
the live directory as it was, after it the new one; either way the stage is garbage, deleted by
`clear_stage` on the next start. A reader listing the directory sees all old files or all new
ones. A query that listed it just before the exchange and opens a replaced file after it gets
FileNotFoundError (retrying reads the new files): never partial or doubled rows.

The writer runs `Compactor.step` after its flushes (same task, so never at the same time as a
flush), each step bounded in time; a flush between two steps that changed the job's directory
makes the job start over at the next pass. `derivs compact` (cli/compact.py) runs it all at once.
"""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from loguru import logger

from storage.dirswap import SwapUnsupported, clear_stage, exchange, stage_root
from storage.files import ROWS_PER_GROUP, DataFile, file_name, fsync_dir, list_files, recover
from storage.legacy import conform
from storage.periods import Cutoffs
from storage.paths import data_directory, ids_in
from storage.schema import KINDS, schema_for

MAX_ROWS_PER_FILE = 1_000_000  # ~20-40 MB of OI, funding or liquidation rows
STEP_BUDGET_S = 0.25  # the writer's share between two flushes
PASS_EVERY_S = 900.0  # look for late rows in closed periods (history hand-offs, backlogs) this often


# -- planning -----------------------------------------------------------------------------------


def _rows(f: DataFile) -> int:
    return pq.read_metadata(f.path).num_rows


def closed_groups(files: list[DataFile], cut: Cutoffs) -> list[list[DataFile]]:
    """The closed files in runs whose periods connect (a file across a period boundary joins the
    periods it spans). Runs are consecutive in time: a run's hull meets no file outside it."""
    groups: list[list[DataFile]] = []
    last_period = None
    for f in files:
        if f.end >= cut.day:
            break  # sorted and disjoint: every later file is in the open day too
        first = cut.period(f.start)
        if groups and last_period is not None and first <= last_period:
            groups[-1].append(f)
        else:
            groups.append([f])
        last_period = max(cut.period(f.end), last_period or 0)
    return groups


def needs_work(group: list[DataFile], cut: Cutoffs, max_rows: int) -> bool:
    if any(cut.period(f.start) != cut.period(f.end) for f in group):
        return True  # a file across a boundary is split
    if len(group) == 1:
        return False
    return len(group) > -(-sum(map(_rows, group)) // max_rows)


def plan(directory: Path, cut: Cutoffs, max_rows: int = MAX_ROWS_PER_FILE) -> list[list[DataFile]]:
    """The groups of `directory`'s files that differ from the target layout (see the module doc)."""
    return [g for g in closed_groups(list_files(directory), cut) if needs_work(g, cut, max_rows)]


# -- a directory's job --------------------------------------------------------------------------


@dataclass
class Result:
    directory: Path
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rows: int = 0
    aborted: str | None = None  # why the live directory was left as it was


class _Output:
    """New files of one group in the stage: a file per period, MAX rows each, full row groups."""

    def __init__(self, stage: Path, schema: pa.Schema, max_rows: int, durable: bool) -> None:
        self.stage, self.schema, self.max_rows, self.durable = stage, schema, max_rows, durable
        self.period: int | None = None
        self.writer: pq.ParquetWriter | None = None
        self.buffer: list[pa.Table] = []
        self.buffered = self.rows = 0
        self.first = self.last = 0
        self.names: list[str] = []

    def add(self, table: pa.Table, period: int) -> None:
        while table.num_rows:
            if self.writer is not None and (period != self.period or self.rows == self.max_rows):
                self.close()
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.stage / ".open.tmp", self.schema)
                self.period, self.rows, self.first = period, 0, table["ts_init"][0].as_py()
            piece = table.slice(0, self.max_rows - self.rows)
            table = table.slice(piece.num_rows)
            self.buffer.append(piece)
            self.buffered += piece.num_rows
            self.rows += piece.num_rows
            self.last = piece["ts_init"][-1].as_py()
            if self.buffered >= ROWS_PER_GROUP:
                self._write()

    def _write(self, last: bool = False) -> None:
        """Full row groups (the rest waits for the next rows: groups of the files merged are often
        partial); everything when `last`."""
        if self.buffer:
            table = pa.concat_tables(self.buffer)
            keep = 0 if last else table.num_rows % ROWS_PER_GROUP
            self.writer.write_table(table.slice(0, table.num_rows - keep), row_group_size=ROWS_PER_GROUP)
            self.buffer, self.buffered = [table.slice(table.num_rows - keep)] if keep else [], keep

    def close(self) -> None:
        if self.writer is None:
            return
        self._write(last=True)
        self.writer.close()
        self.writer = None
        tmp, name = self.stage / ".open.tmp", file_name(self.first, self.last)
        if self.durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, self.stage / name)
        self.names.append(name)


def _split_by_period(table: pa.Table, cut: Cutoffs) -> Iterator[tuple[pa.Table, int]]:
    """`table` (sorted by ts_init) in slices, each inside one period."""
    ts = table["ts_init"]
    start = 0
    while start < len(ts):
        period = cut.period(ts[start].as_py())
        end = pc.sum(pc.less(ts, cut.next_period(period))).as_py()  # sorted: the rows before the next period
        yield table.slice(start, end - start), period
        start = end


def _identity(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


class Job:
    """The compaction of one directory, as a generator of short steps (`steps`), each a label."""

    def __init__(self, root: Path, kind: str, instrument_id: str, cut: Cutoffs,
                 max_rows: int = MAX_ROWS_PER_FILE, durable: bool = True,
                 groups: list[list[DataFile]] | None = None, stage_suffix: str = "") -> None:
        """`groups`: files to merge (each into one file per period), instead of `plan`'s (the
        writer's tiers of the open day, storage/tiers.py, which stage apart: `stage_suffix`)."""
        self.directory = data_directory(root, kind, instrument_id)
        self.stage = stage_root(root) / kind / (self.directory.name + stage_suffix)
        self.schema, self.cut, self.max_rows, self.durable = schema_for(kind, instrument_id), cut, max_rows, durable
        recover(self.directory, durable)  # a flush's own interrupted merge is finished first
        self.groups = plan(self.directory, cut, max_rows) if groups is None else groups
        inputs = [f for g in self.groups for f in g]
        self.inputs = {f.path: _identity(f.path) for f in inputs}
        self.result = Result(self.directory, files_before=len(inputs), bytes_before=sum(i[1] for i in self.inputs.values()))

    def __bool__(self) -> bool:
        return bool(self.groups)

    def steps(self) -> Iterator[str]:
        shutil.rmtree(self.stage, ignore_errors=True)
        self.stage.mkdir(parents=True)
        try:
            names = yield from self._write_new_files()
            if (why := self._changed_meanwhile()) is not None:
                self.result.aborted = why
                return
            self._link_the_others()
            yield "linked"
            exchange(self.stage, self.directory)  # the commit point
            if self.durable:
                fsync_dir(self.directory.parent)
                fsync_dir(self.stage.parent)
            yield "exchanged"
            self.result.files_after = len(names)
            self.result.bytes_after = sum(os.path.getsize(self.directory / n) for n in names)
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)  # the new files if not committed, else the old ones

    def _write_new_files(self) -> Iterator[str]:
        names = []
        for group in self.groups:
            out = _Output(self.stage, self.schema, self.max_rows, self.durable)
            try:
                for f in group:
                    with pq.ParquetFile(f.path) as source:
                        for i in range(source.num_row_groups):
                            table = conform(source.read_row_group(i), self.schema)
                            self.result.rows += table.num_rows
                            for piece, period in _split_by_period(table, self.cut):
                                out.add(piece, period)
                            yield f"read {os.path.basename(f.path)} group {i}"
                out.close()
            finally:
                if out.writer is not None:
                    out.writer.close()
            names += out.names
        if self.durable:
            fsync_dir(self.stage)
        return names

    def _changed_meanwhile(self) -> str | None:
        """Did a flush between two steps touch the files we read, or add one among them?"""
        for path, identity in self.inputs.items():
            try:
                if _identity(path) != identity:
                    return f"{path} changed"
            except FileNotFoundError:
                return f"{path} is gone"
        hulls = [(g[0].start, g[-1].end) for g in self.groups]
        for f in list_files(self.directory):
            if f.path not in self.inputs and any(f.start <= end and f.end >= start for start, end in hulls):
                return f"{f.path} was written meanwhile"
        return None

    def _link_the_others(self) -> None:
        for entry in os.scandir(self.directory):
            if entry.path not in self.inputs:
                if not entry.is_file(follow_symlinks=False):
                    raise OSError(f"{entry.path}: not a regular file, cannot carry it over in a compaction")
                os.link(entry.path, self.stage / entry.name)
        if self.durable:
            fsync_dir(self.stage)


def directories(root: Path) -> list[tuple[str, str]]:
    return [(kind, iid) for kind in KINDS for iid in ids_in(root, kind)]


# -- the writer's background share --------------------------------------------------------------


@dataclass
class Compactor:
    """Consolidates closed periods of a catalog a little at a time (`step`), for the writer."""

    root: Path
    durable: bool = True
    budget_s: float = STEP_BUDGET_S
    pass_every_s: float = PASS_EVERY_S
    max_rows: int = MAX_ROWS_PER_FILE
    now_ns: Callable[[], int] = time.time_ns
    queue: list[tuple[str, str]] = field(default_factory=list)
    job: Iterator[str] | None = None
    current: Job | None = None
    cut: Cutoffs | None = None
    pass_started: float | None = None
    done: list[Result] = field(default_factory=list)
    off: bool = False  # the file system cannot exchange directories: said once, not tried again

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        clear_stage(self.root)

    def _pass_due(self) -> bool:
        if self.off:
            return False
        if self.pass_started is None or self.cut is None:
            return True
        return Cutoffs.at(self.now_ns()) != self.cut or time.monotonic() - self.pass_started >= self.pass_every_s

    def step(self) -> bool:
        """Work for at most about `budget_s` (one row group past it at worst); returns whether
        work is left in the current pass."""
        deadline = time.monotonic() + self.budget_s
        if self.job is None and not self.queue:
            if not self._pass_due():
                return False
            self.cut, self.pass_started = Cutoffs.at(self.now_ns()), time.monotonic()
            self.done = []  # the last pass's results only (the writer runs for weeks)
            try:
                self.queue = directories(self.root)[::-1]
            except OSError as exc:  # never the writer's problem: the next pass tries again
                logger.error("compaction: cannot list {}: {}", self.root, exc)
                return False
        while self.job is not None or self.queue:
            if self.job is None:
                self._next_job()
            else:
                self._advance()
            if time.monotonic() >= deadline:
                break
        return bool(self.job or self.queue)

    def _advance(self) -> None:
        try:
            if next(self.job) == "linked":  # the exchange at once: a flush between would be left in the old directory
                next(self.job)
        except StopIteration:
            self._finished()
        except SwapUnsupported as exc:
            logger.error("compaction is off: {} (it needs an atomic directory exchange; `derivs compact` says the same)", exc)
            self.job, self.current, self.queue, self.off = None, None, [], True
        except Exception as exc:  # a full disk, an unreadable file: this directory waits for the next pass
            logger.opt(exception=exc).error("compacting {} failed: {}; left as it was, tried again in the next pass",
                                            self.current.directory, exc)
            self.job = self.current = None

    def _next_job(self) -> None:
        kind, iid = self.queue.pop()
        try:
            job = Job(self.root, kind, iid, self.cut, self.max_rows, self.durable)
        except Exception as exc:
            logger.error("compaction: cannot plan {}/{}: {}", kind, iid, exc)
            return
        if job:
            self.current, self.job = job, job.steps()

    def _finished(self) -> None:
        result = self.current.result
        self.job = self.current = None
        if result.aborted:
            logger.info("compaction of {} left for the next pass: {}", result.directory, result.aborted)
            return
        self.done.append(result)
        logger.info("compacted {}: {} files -> {} ({} rows)", result.directory, result.files_before,
                    result.files_after, result.rows)
