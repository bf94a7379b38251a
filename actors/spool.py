"""A collector's outbox on disk: every event it numbered and the writer has not acknowledged.

Frames are `<u64 seq><u32 length><bytes>`, appended (one unbuffered write each, so a `kill -9`
loses nothing written) to segment files `<name>.<epoch>.<n>.seg` (mode 0600) of one outbox life
(one epoch). A frame with seq 0 is an ack marker: its body is `<u64 acked><u64 unix ns>`, the
writer had everything up to `acked` then. A segment whose frames are all acknowledged is deleted;
a log whose every frame is acknowledged shrinks to a tombstone when its outbox closes.

What survives a stop, a restart or a crash is read back by `recover`: the next process of the
same collector re-sends those events under their old epoch and seqs, so the writer (which keeps
only the next expected seq per stream) stores each exactly once.

The log may lag behind the outbox while the disk is full (events then wait in memory only); the
outbox writes the missing frames once the disk has room, skipping those acknowledged meanwhile.
So a log may jump over seqs, and everything before such a jump was acknowledged.
"""

import os
import re
from array import array
from bisect import bisect_right
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_HEAD = struct.Struct("<QI")
_MARK = struct.Struct("<QQ")
SEGMENT_BYTES = 4 << 20  # a new segment after this: acknowledged ones are deleted whole
TOMBSTONE_TTL_S = 600
_SEGMENT = re.compile(r"^(?P<name>.+)\.(?P<epoch>\d+)\.(?P<n>\d+)\.seg$")


def frame_size(data: bytes) -> int:
    """Bytes one frame of `data` takes in a log."""
    return _HEAD.size + len(data)


@dataclass
class Segment:
    number: int
    path: Path
    size: int = 0
    last_seq: int = 0  # highest event seq in it (0: none yet)


@dataclass
class Position:
    """Where a frame starts: segment number and byte offset."""

    segment: int
    offset: int


class OutboxLog:
    """The segments of one outbox life, appended at the end and read back in order."""

    def __init__(self, directory: str | os.PathLike, name: str, epoch: int, segments: list[Segment] | None = None):
        self.dir, self.name, self.epoch = Path(directory), name, epoch
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.segments: list[Segment] = segments or []
        self.last_seq = max((s.last_seq for s in self.segments), default=0)  # highest seq written
        self._fd: int | None = None
        self.created_ns = time.time_ns()
        self.finished_ns: int | None = None  # a tombstone's: when its events were all acknowledged

    # -- writing --------------------------------------------------------------------------

    def append(self, seq: int, data: bytes) -> Position:
        """Write one frame; returns where it starts. OSError (disk full) leaves the file as it was."""
        segment = self._writable()
        position = Position(segment.number, segment.size)
        self._write(segment, _HEAD.pack(seq, len(data)) + data)
        segment.last_seq = self.last_seq = seq
        return position

    def mark_acked(self, acked: int) -> None:
        """Remember how far the writer acknowledged (a restart then re-sends less)."""
        try:
            self._write(self._writable(), _HEAD.pack(0, _MARK.size) + _MARK.pack(acked, time.time_ns()))
        except OSError:
            pass  # disk full: an older mark only means a few more re-sent (and dropped) events

    def _writable(self) -> Segment:
        if not self.segments or self.segments[-1].size >= SEGMENT_BYTES:
            self._close_fd()
            number = self.segments[-1].number + 1 if self.segments else 1
            self.segments.append(Segment(number, self.dir / f"{self.name}.{self.epoch}.{number:06d}.seg"))
        if self._fd is None:
            segment = self.segments[-1]
            self._fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return self.segments[-1]

    def _write(self, segment: Segment, frame: bytes) -> None:
        try:
            written = os.write(self._fd, frame)
            if written != len(frame):
                raise OSError(28, f"short write to {segment.path} ({written} of {len(frame)} bytes)")
        except OSError:
            os.ftruncate(self._fd, segment.size)  # never leave a torn frame for later ones to follow
            raise
        segment.size += len(frame)

    def forget(self, acked: int) -> None:
        """Delete the segments (all but the one being written) whose events are all acknowledged."""
        while len(self.segments) > 1 and self.segments[0].last_seq <= acked:
            self.segments.pop(0).path.unlink(missing_ok=True)

    def close(self, *, finished: bool) -> None:
        """A finished log (every event acknowledged) shrinks to a tombstone: one ack marker
        that lets the next life tell a writer which lost its WAL tail what it had acknowledged,
        for TOMBSTONE_TTL_S (the writer has long put its WAL in Parquet by then)."""
        self._close_fd()
        if not finished:
            return
        finished_ns = self.finished_ns or time.time_ns()
        for segment in self.segments:
            segment.path.unlink(missing_ok=True)
        self.segments.clear()
        if self.last_seq and time.time_ns() - finished_ns < TOMBSTONE_TTL_S * 1e9:
            self._write(self._writable(), _HEAD.pack(0, _MARK.size) + _MARK.pack(self.last_seq, finished_ns))
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading --------------------------------------------------------------------------

    def start(self) -> Position:
        return Position(self.segments[0].number if self.segments else 1, 0)

    def frames(self, start: Position) -> Iterator[tuple[int, bytes, Position]]:
        """(seq, data, position of the next frame) from `start` on, ack markers left out."""
        for segment in self.segments:
            if segment.number < start.segment:
                continue
            offset = start.offset if segment.number == start.segment else 0
            for seq, data, end in _read_frames(segment.path, offset, segment.size):
                if seq:
                    yield seq, data, Position(segment.number, end)

    # -- recovery -------------------------------------------------------------------------

    @classmethod
    def recover(cls, directory: str | os.PathLike, name: str) -> list["Recovered"]:
        """The logs an earlier life of `name` left, oldest first, each with what it still holds."""
        by_epoch: dict[int, list[Segment]] = {}
        for path in Path(directory).glob(f"{name}.*.seg") if Path(directory).is_dir() else []:
            m = _SEGMENT.match(path.name)
            if m and m["name"] == name:
                by_epoch.setdefault(int(m["epoch"]), []).append(Segment(int(m["n"]), path))
        found = [_scan(cls(directory, name, epoch, sorted(segs, key=lambda s: s.number))) for epoch, segs in by_epoch.items()]
        expired = [r for r in found if r.log.finished_ns and time.time_ns() - r.log.finished_ns >= TOMBSTONE_TTL_S * 1e9]
        for r in expired:
            r.log.close(finished=True)  # removes it
        return sorted((r for r in found if r not in expired), key=lambda r: r.log.created_ns)


@dataclass
class Recovered:
    log: OutboxLog
    acked: int  # everything up to here is known to be acknowledged
    pending: int  # events after `acked`
    pending_bytes: int
    torn: list[str]  # what was cut off (crash or full disk mid-write), for the log line


def _scan(log: OutboxLog) -> Recovered:
    """Read a left-behind log once: its last seq, how far it was acknowledged, what it holds."""
    acked, marked_ns, torn = 0, 0, []
    seqs, sizes = array("Q"), array("Q")  # a full 1 GB spool holds millions of frames: no tuples
    for segment in log.segments:
        segment.size = segment.path.stat().st_size
        good = 0
        for seq, data, end in _read_frames(segment.path, 0, segment.size):
            good = end
            if seq == 0:
                mark, marked_ns = _MARK.unpack(data)
                acked = max(acked, mark)
            else:
                if seqs and seq > seqs[-1] + 1:
                    acked = max(acked, seq - 1)  # the log skipped acknowledged frames (it lagged)
                seqs.append(seq)
                sizes.append(len(data) + _HEAD.size)
                segment.last_seq = seq
        if good < segment.size:
            torn.append(f"{segment.path.name}: {segment.size - good} bytes after offset {good}")
            with open(segment.path, "r+b") as f:
                f.truncate(good)
            segment.size = good
    if seqs:
        acked = max(acked, seqs[0] - 1)
    else:  # a tombstone
        log.finished_ns = marked_ns
    log.last_seq = seqs[-1] if seqs else acked
    log.created_ns = min((s.path.stat().st_mtime_ns for s in log.segments), default=0)
    acked = min(acked, log.last_seq)
    first_held = bisect_right(seqs, acked)  # seqs ascend
    return Recovered(log, acked, len(seqs) - first_held, sum(sizes[first_held:]), torn)


def _read_frames(path: Path, offset: int, end: int) -> Iterator[tuple[int, bytes, int]]:
    """(seq, data, offset after the frame) of the complete frames of `path` in [offset, end)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        while offset + _HEAD.size <= end:
            seq, size = _HEAD.unpack(f.read(_HEAD.size))
            if offset + _HEAD.size + size > end:
                return
            data = f.read(size)
            if len(data) < size:
                return
            offset += _HEAD.size + size
            yield seq, data, offset
