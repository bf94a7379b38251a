"""The writer's write-ahead log: accepted messages, synced to disk before they are acknowledged.

Frames are `<u32 length><bytes>`. A torn last frame (crash mid-append) is ignored on replay:
its message was never synced, so never acknowledged, so its collector still has it and will
re-send it.

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

from actors.catalog_files import fsync_dir

_LEN = struct.Struct("<I")


class Wal:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._file = open(self.path, "ab", buffering=0)
        os.chmod(self.path, 0o600)
        self._pending = bytearray()
        self.synced_size = self.path.stat().st_size
        self.unsynced = 0

    def append(self, data: bytes) -> None:
        self._pending += _LEN.pack(len(data)) + data
        self.unsynced += 1

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

    def replay(self) -> Iterator[bytes]:
        """Every complete frame of the sealed segments and the log, oldest first."""
        for path in [*self.segments(), self.path]:
            yield from _frames(path)

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


def _frames(path: Path) -> Iterator[bytes]:
    """The complete frames of one file; a torn tail (never synced, never acknowledged) is left out."""
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
        yield data[pos + _LEN.size : pos + _LEN.size + size]
        pos += _LEN.size + size


def _number(segment: Path) -> int:
    """`wal.log.<n>.sealed` -> n."""
    return int(segment.name.split(".")[-2])
