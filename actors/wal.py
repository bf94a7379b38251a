"""The writer's write-ahead log: accepted messages, synced to disk before they are acknowledged.

Frames are `<u32 length><bytes>`. A torn last frame (crash mid-append) is ignored on replay:
its message was never synced, so never acknowledged, so its collector still has it and will
re-send it. After the rows are in Parquet the log is rotated: a new file that starts with a
checkpoint (the last seq per stream) replaces the old one atomically.
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
        self._file = open(self.path, "ab")
        os.chmod(self.path, 0o600)
        self.unsynced = 0

    def append(self, data: bytes) -> None:
        self._file.write(_LEN.pack(len(data)) + data)
        self.unsynced += 1

    def sync(self) -> None:
        """Group commit: one fsync for everything appended since the last one."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self.unsynced = 0

    def replay(self) -> Iterator[bytes]:
        """Every complete frame in the file, oldest first."""
        self._file.flush()
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
        self._file = open(self.path, "ab")
        self.unsynced = 0

    def close(self) -> None:
        self._file.close()
