"""Atomic exchange of two directories, the commit point of a compaction (storage/compaction.py).

A compaction builds a directory's new file set beside the catalog (`<catalog>/.compaction/`,
outside `data/`, so `ParquetDataCatalog`'s `data/<kind>/**/*.parquet` never sees it) and then
swaps it with the live directory in one system call: Linux `renameat2(RENAME_EXCHANGE)`, macOS
`renamex_np(RENAME_SWAP)`. A reader that lists the directory sees either every old file or
every new one: never both (no duplicate rows), never neither (no missing rows).
"""

import contextlib
import ctypes
import errno
import os
import shutil
import sys
from pathlib import Path

STAGE = ".compaction"  # under the catalog root, beside data/

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 2  # macOS sys/stdio.h

_libc = ctypes.CDLL(None, use_errno=True)


class SwapUnsupported(OSError):
    """The platform or file system cannot exchange two directories atomically."""


def exchange(a: Path | str, b: Path | str) -> None:
    """Swap the directories `a` and `b` atomically (both must exist, on one file system)."""
    a_b, b_b = os.fsencode(a), os.fsencode(b)
    if sys.platform.startswith("linux") and hasattr(_libc, "renameat2"):
        result = _libc.renameat2(_AT_FDCWD, a_b, _AT_FDCWD, b_b, _RENAME_EXCHANGE)
    elif sys.platform == "darwin" and hasattr(_libc, "renamex_np"):
        result = _libc.renamex_np(a_b, b_b, _RENAME_SWAP)
    else:
        raise SwapUnsupported(errno.ENOSYS, f"no atomic directory exchange on {sys.platform}")
    if result != 0:
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise SwapUnsupported(code, f"this file system cannot exchange {a} and {b} atomically: {os.strerror(code)}")
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def stage_root(catalog_root: Path | str) -> Path:
    return Path(catalog_root) / STAGE


def clear_stage(catalog_root: Path | str) -> int:
    """Delete whatever an interrupted compaction left in the stage; returns directories removed.

    Safe in every case: before the exchange the stage holds the unfinished new files (the live
    directory still has every old one); after it, the stage holds the old files (the live
    directory has every new one); unchanged files are hard links, shared with the live directory.
    """
    root = stage_root(catalog_root)
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for kind in os.scandir(root):
            for entry in os.scandir(kind.path) if kind.is_dir() else ():
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    return removed
