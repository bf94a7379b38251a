"""The writer's write-ahead log: accepted messages, synced to disk before they are acknowledged.

Frames are `<u32 length><bytes>`: one message each (a batch of events is one frame, one write). A torn last frame of the log (crash mid-append) was never
synced, so never acknowledged, so its collector still has it and will re-send it: it is cut off
when the log is opened (so later frames never follow it) and reported. A sealed segment was
synced whole before it was sealed: a torn one has lost acknowledged frames, and replay says so
(`Torn`), so the writer does not trust the checkpoint after it.

Segments, so that Parquet can be written while the log goes on: `seal` renames the log to
`<name>.<n>.sealed` (its rows are what the writer is about to put in Parquet) and starts a new
log with a checkpoint (the last seq per stream). Once those rows are in Parquet, `drop_sealed`
deletes the segment. Replay reads the sealed segments oldest first, then the log.

Appends are buffered here and written by `sync` (one write + one fsync per group). If that
fails (disk full), the file is cut back to its last synced size, so a later append never
follows a torn frame, and the caller forgets what it accepted since the last sync.
"""

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from storage.files import fsync_dir

_LEN = struct.Struct("<I")


class Torn(NamedTuple):
    """Bytes at the end of a WAL file that are not a whole frame."""

    path: Path
    offset: int  # where the last whole frame ends
    size: int  # the file's size

    def __str__(self) -> str:
        return f"{self.path.name}: {self.size - self.offset} bytes after offset {self.offset} are not a whole frame"


class Wal:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.torn_tail = _torn(self.path)
        if self.torn_tail is not None:  # a crash mid-append: cut it, so new frames do not follow it
            os.truncate(self.path, self.torn_tail.offset)
        self._file = open(self.path, "ab", buffering=0)
        os.chmod(self.path, 0o600)
        self._pending = bytearray()
        self.synced_size = self.path.stat().st_size
        self.unsynced = 0

    def append(self, data: bytes, events: int = 1) -> None:
        """Buffer one frame holding `events` events (`unsynced` counts events, for the group commit)."""
        self._pending += _LEN.pack(len(data)) + data
        self.unsynced += events

    def sync(self) -> None:
        """Group commit: one write and one fsync for everything appended since the last one.

        On failure (OSError, e.g. ENOSPC) the unsynced frames are dropped from the file and the
        buffer, and the error propagates: nothing of them was acknowledged.
        """
        data, written = bytes(self._pending), 0
        try:
            while written < len(data):
                written += self._file.write(data[written:])
            os.fsync(self._file.fileno())
        except OSError:
            self._pending.clear()
            self.unsynced = 0
            os.ftruncate(self._file.fileno(), self.synced_size)
            raise
        self.synced_size += len(self._pending)
        self._pending.clear()
        self.unsynced = 0

    def segments(self) -> list[Path]:
        """Sealed segments, oldest first."""
        return sorted(self.path.parent.glob(f"{self.path.name}.*.sealed"), key=_number)

    def replay(self) -> Iterator[bytes | Torn]:
        """Every complete frame of the sealed segments and the log, oldest first; a `Torn` after
        the frames of a sealed segment that does not end with a whole frame."""
        for path in self.segments():
            yield from _frames(path)
            if torn := _torn(path):
                yield torn
        yield from _frames(self.path)

    def seal(self, first: bytes) -> Path:
        """Set the log aside as the newest sealed segment and go on in a new log that starts
        with `first` (the checkpoint). Everything appended must be synced. Returns the segment.

        A crash between the two renames leaves the segment and no log (the next start makes an
        empty one): replay still has every frame.
        """
        assert not self._pending, "seal after sync"
        segments = self.segments()
        number = _number(segments[-1]) + 1 if segments else 1
        segment = self.path.with_name(f"{self.path.name}.{number}.sealed")
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(_LEN.pack(len(first)) + first)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        self._file.close()
        os.replace(self.path, segment)
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)  # the renames themselves must survive a crash
        self._file = open(self.path, "ab", buffering=0)
        self.synced_size = len(first) + _LEN.size
        self.unsynced = 0
        return segment

    def drop_sealed(self, upto: Path) -> None:
        """Delete the sealed segments up to and including `upto`: their rows are in Parquet."""
        for path in self.segments():
            if _number(path) <= _number(upto):
                path.unlink()
        fsync_dir(self.path.parent)

    def close(self) -> None:
        self._file.close()


def _frames(path: Path, *, sizes_only: bool = False) -> Iterator[bytes | int]:
    """The complete frames of one file (with `sizes_only`, where each ends); a torn tail is left out."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    pos = 0
    while pos + _LEN.size <= len(data):
        (size,) = _LEN.unpack_from(data, pos)
        if pos + _LEN.size + size > len(data):
            break
        pos += _LEN.size + size
        yield pos if sizes_only else data[pos - size : pos]


def _torn(path: Path) -> Torn | None:
    """The torn tail of a WAL file, if it has one."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    end = 0
    for end in _frames(path, sizes_only=True):
        pass
    return Torn(path, end, size) if end < size else None


def _number(segment: Path) -> int:
    """`wal.log.<n>.sealed` -> n."""
    return int(segment.name.split(".")[-2])
