"""The writer's write-ahead log: accepted messages, synced to disk before they are acknowledged.

Frames are `<u32 length><bytes>`. A torn last frame (crash mid-append) is ignored on replay:
its message was never synced, so never acknowledged, so its collector still has it and will
re-send it. After the rows are in Parquet the log is rotated: a new file that starts with a
checkpoint (the last seq per stream) replaces the old one atomically.

Appends are buffered here and written by `sync` (one write + one fsync per group). If that
fails (disk full), the file is cut back to its last synced size, so a later append never
follows a torn frame, and the caller forgets what it accepted since the last sync.
"""

import os
import struct
from collections.abc import Iterator
from pathlib import Path

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

    def replay(self) -> Iterator[bytes]:
        """Every complete frame in the file, oldest first."""
        with open(self.path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + _LEN.size <= len(data):
            (size,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + size > len(data):
                break  # torn tail: never synced, never acknowledged
            yield data[pos + _LEN.size : pos + _LEN.size + size]
            pos += _LEN.size + size

    def rotate(self, first: bytes) -> None:
        """Replace the log by one holding only `first` (the checkpoint): temp file, fsync, rename."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(_LEN.pack(len(first)) + first)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        self._file.close()
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)
        self._file = open(self.path, "ab", buffering=0)
        self._pending.clear()
        self.synced_size = len(first) + _LEN.size
        self.unsynced = 0

    def close(self) -> None:
        self._file.close()
