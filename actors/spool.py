"""An outbox's overflow on disk: numbered frames beyond the in-memory bound, oldest out first.

Frames are `<u64 seq><u32 length><bytes>` appended to one file (mode 0600); a read offset walks
it, and once everything is read back the file is emptied. It holds events that were never sent:
they go out, in order, when the in-memory part has room again (the memory part is the window in
flight). It belongs to one process life (one epoch); a new life starts with an empty file.
"""

import os
import struct
from pathlib import Path

_HEAD = struct.Struct("<QI")


class Spool:
    def __init__(self, path: str | os.PathLike, max_bytes: int):
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._file = open(self.path, "w+b")  # truncates what an earlier life left: its epoch is gone
        os.chmod(self.path, 0o600)
        self._read_at = 0
        self.count = 0
        self.bytes = 0  # bytes written and not yet read back

    def has_room(self, size: int) -> bool:
        return self.bytes + _HEAD.size + size <= self.max_bytes

    def append(self, seq: int, data: bytes) -> None:
        """Raises OSError (disk full): the caller counts the event as overflow."""
        self._file.seek(0, os.SEEK_END)
        self._file.write(_HEAD.pack(seq, len(data)) + data)
        self.count += 1
        self.bytes += _HEAD.size + len(data)

    def pop(self) -> tuple[int, bytes]:
        """The oldest frame (count must be > 0)."""
        self._file.seek(self._read_at)
        seq, size = _HEAD.unpack(self._file.read(_HEAD.size))
        data = self._file.read(size)
        self._read_at += _HEAD.size + size
        self.count -= 1
        self.bytes -= _HEAD.size + size
        if not self.count:  # all read back: start the file over
            self._file.truncate(0)
            self._read_at = 0
        return seq, data

    def close(self, *, remove: bool = True) -> None:
        self._file.close()
        if remove:
            self.path.unlink(missing_ok=True)
