"""UTC days and months of catalog rows: which closed period a timestamp is in (compaction's
target layout, storage/compaction.py) and a batch cut at month boundaries (storage/files.py)."""

import calendar
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from messages.timeunits import NS

DAY_NS = 86_400 * NS


def month_start(ns: int) -> int:
    t = time.gmtime(ns // NS)
    return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * NS


def next_month(start_ns: int) -> int:
    t = time.gmtime(start_ns // NS)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) * NS


@dataclass(frozen=True)
class Cutoffs:
    """What is closed at `now_ns`: days before `day`, months before `month`."""

    day: int  # start of the current UTC day
    month: int  # start of the current UTC month

    @classmethod
    def at(cls, now_ns: int) -> "Cutoffs":
        return cls(now_ns - now_ns % DAY_NS, month_start(now_ns))

    def period(self, ts: int) -> int:
        """Start of the closed period holding `ts` (its month if that is over, else its day)."""
        return month_start(ts) if ts < self.month else ts - ts % DAY_NS

    def next_period(self, start: int) -> int:
        return next_month(start) if start < self.month else start + DAY_NS


def by_month(files: list) -> list[list]:
    """Data files (sorted, with `.start`) in runs by the UTC month their first row is in."""
    runs: list[list] = []
    for f in files:
        if runs and month_start(runs[-1][0].start) == month_start(f.start):
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def split_rows(new: pa.Table, runs: list[list]) -> list[pa.Table]:
    """`new` (sorted by ts_init) cut at the start of each run but the first: the rows of a run
    meet only its files (a row between two runs goes to the earlier one, whose hull then still
    ends before the next run starts)."""
    ts = new["ts_init"]
    cuts = [0] + [pc.sum(pc.less(ts, run[0].start)).as_py() for run in runs[1:]] + [new.num_rows]
    return [new.slice(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
