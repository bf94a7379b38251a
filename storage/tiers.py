"""The open day's files in tiers: a flush's cost follows its rows, and a directory keeps a
bounded number of files per day.

The writer appends a flush's rows to the day's newest file only while that file is small
(`files.APPEND_MAX_BYTES`, about a row group: re-writing it costs about what a new file does);
past that it starts a new file. Those "sealed" files are merged in tiers so that they do not
pile up: when the last TIER_FANOUT sealed files before the newest one are of one tier, they
become one file of the next tier. A tier is a size class, `tier_of`: sealed files (>= S) are
tier 0, TIER_FANOUT of them make a tier-1 file (~TIER_FANOUT x S), and so on up to MAX_TIER,
whose files are left as they are. So a row is re-written at most MAX_TIER times while its day
is open (a flush costs its rows, amortized), and a day keeps at most about
(TIER_FANOUT - 1) x MAX_TIER + 1 files besides its MAX_TIER ones. When the day closes, the
compactor (storage/compaction.py) consolidates it like any other.

A tier merge runs as a compaction `Job` (stage + atomic directory exchange): a `kill -9` at any
point leaves the old files or the new one, never both or neither, and a reader listing the
directory sees one set or the other. It runs right after a flush has committed its rows (the
same thread, never beside another flush).
"""

import math
import os
import time
from pathlib import Path

from loguru import logger

from storage import files as cf
from storage.compaction import Job
from storage.dirswap import SwapUnsupported
from storage.durability import out_of_space
from storage.paths import data_directory
from storage.periods import DAY_NS, Cutoffs

TIER_FANOUT = 4  # sealed files of one tier merged into one of the next
MAX_TIER = 4  # files of this tier (~S x 4^4 = 32 MB at S = 128 KB) are not merged any further
STAGE_SUFFIX = ".tier"  # beside a compaction's stage of the same directory (the compactor may be midway)


def tier_of(size: int) -> int:
    """The size class of a sealed file: 0 from S on, one more per TIER_FANOUT-fold. Each bound is
    half the size TIER_FANOUT files of the tier below usually make, so a merged file that
    compresses a little better than its parts still lands a tier up."""
    return max(0, int(math.log(2 * size / cf.APPEND_MAX_BYTES, TIER_FANOUT) + 1e-9))


def due(files: list[cf.DataFile]) -> list[cf.DataFile]:
    """The files of `files` (one directory, sorted) to merge now, or [].

    The candidates are the files of the newest file's UTC day before it (the newest is still
    appended to); of those, the trailing run of sealed files of one tier below MAX_TIER. A small
    file among them (late rows of the day) ends a run: only consecutive files merge, so the
    merged file's interval meets no other.
    """
    if len(files) <= TIER_FANOUT:
        return []
    day = files[-1].start - files[-1].start % DAY_NS
    run: list[cf.DataFile] = []
    tier = None
    for f in reversed(files[:-1]):
        if f.start < day:
            break
        size = os.path.getsize(f.path)
        if size < cf.APPEND_MAX_BYTES or (tier is not None and tier_of(size) != tier) or tier_of(size) >= MAX_TIER:
            break
        tier = tier_of(size)
        run.append(f)
        if len(run) == TIER_FANOUT:
            return run[::-1]
    return []


def merge_due(root: Path, kind: str, instrument_id: str, durable: bool = True) -> int:
    """Merge `due` files of one directory until none are; returns how many files went."""
    directory = data_directory(root, kind, instrument_id)
    removed = 0
    while group := due(cf.list_files(directory)):
        job = Job(root, kind, instrument_id, Cutoffs.at(time.time_ns()), durable=durable, groups=[group],
                  stage_suffix=STAGE_SUFFIX)
        for _ in job.steps():
            pass
        if job.result.aborted:  # cannot happen within a flush's thread; never loop on it
            logger.warning("tier merge of {} left as it was: {}", directory, job.result.aborted)
            break
        removed += len(group) - job.result.files_after
    return removed


class Tiers:
    """The writer's tier merges, on by default; off for good (said once) where the file system
    cannot exchange two directories (the compactor is off there too)."""

    def __init__(self, root: Path, durable: bool = True) -> None:
        self.root, self.durable, self.off = Path(root), durable, False

    def merge(self, directories: list[tuple[str, str]]) -> int:
        """After a flush: the tier merges its new files made due. An error leaves a directory as
        it was (its rows are stored already): tried again after its next flush."""
        removed = 0
        for kind, instrument_id in directories:
            if self.off:
                break
            try:
                removed += merge_due(self.root, kind, instrument_id, self.durable)
            except SwapUnsupported as exc:
                logger.error("tier merges are off: {} (the open day's files are no longer merged)", exc)
                self.off = True
            except Exception as exc:
                if out_of_space(exc):  # every other merge would fail alike; the next flush says so
                    logger.error("tier merges of this flush stopped: {}", exc)
                    break
                logger.opt(exception=exc).error("tier merge of {}/{} failed: {}; left as it was", kind, instrument_id, exc)
        return removed
