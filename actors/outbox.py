"""A collector's outbox: every event it sent, kept until the writer acknowledges it (design §3).

Acks are cumulative, so the outbox is an ordered map seq -> encoded envelope. Resending is
go-back-N: when the oldest unacknowledged event is older than the timeout (or the writer asks),
the events from it on are sent again; the writer keeps only the next expected seq, so a resend
never doubles a row. A resend is at most `resend_window` events: re-sending a whole backlog of
tens of thousands at every timeout saturates the validator with copies and the mesh never
catches up (congestion collapse); the writer asks for the next window as soon as it has the
previous one.

The outbox is bounded: `memory_max` events in memory (sent, in flight), then up to
`spool_max_bytes` on disk (actors/spool.py: not sent yet, sent in order when memory has room).
Beyond both, `add` raises `OutboxFull` without using a seq, and the caller records a gap.

Two ways to send: the caller sends what `add` returns at once (the default), or, with
`sender_driven=True`, a sender task takes `unsent()` in seq order and awaits the socket, calling
`mark_sent`; then a slow bus delays events inside the bounded outbox, in order, instead of
making holes that cost re-send round trips. There a re-send is a rewind of the sender's cursor
(go-back-N through the same ordered, paced path), ignored while the sender is still streaming
the range from a rewind less than `resend_after_s` ago.
"""

import os
import random
import time
from collections import OrderedDict
from itertools import islice

import msgspec

from messages.codec import encode
from messages.envelope import Envelope
from actors.spool import Spool
from messages.events import AnyEvent


class OutboxFull(Exception):
    """Memory and spool are full: the event was not numbered; record it as a gap."""


def new_epoch() -> int:
    """A random id per process start: a restarted collector's seq 1 is not mistaken for a re-send."""
    return random.getrandbits(62)


class Outbox:
    def __init__(self, source: str, epoch: int | None = None, *, resend_after_s: float = 2.0, resend_window: int = 5000,
                 memory_max: int = 1_000_000, spool_path: str | os.PathLike | None = None, spool_max_bytes: int = 0,
                 sender_driven: bool = False):
        self.source = source
        self.sender_driven = sender_driven
        self.sent_to = 0  # highest seq handed to the socket
        self.memory_max = memory_max
        self.spool = Spool(spool_path, spool_max_bytes) if spool_path and spool_max_bytes > 0 else None
        self.epoch = new_epoch() if epoch is None else epoch
        self.resend_after_s = resend_after_s
        self.resend_window = resend_window
        self.seq = 0  # last seq assigned
        self.acked = 0  # highest seq the writer made durable
        self._pending: OrderedDict[int, bytes] = OrderedDict()
        self._oldest_sent_at = 0.0
        self._resent_to, self._resent_at = 0, 0.0  # the last window re-sent on request, and when

    def __len__(self) -> int:
        """Unacknowledged events: in flight (memory) and waiting on disk."""
        return len(self._pending) + (self.spool.count if self.spool else 0)

    @property
    def spooled(self) -> int:
        return self.spool.count if self.spool else 0

    def add(self, event: AnyEvent, *, force: bool = False) -> bytes | None:
        """Number the event and keep it; returns the wire message to send now, or None if it
        went to the spool (sent later by `refill`). `force` ignores the bounds (a few gap records).

        Raises OutboxFull (no seq used) when memory and spool are full.
        """
        payload = msgspec.Raw(encode(event))
        # Seqs go out in order: once events wait on disk, new ones queue behind them.
        in_memory = not self.spooled and (force or len(self._pending) < self.memory_max)
        if not in_memory and not force and (self.spool is None or not self.spool.has_room(len(payload) + 64)):
            raise OutboxFull(f"{self.source}: {len(self._pending)} events in memory and {self.spooled} on disk unacknowledged")
        self.seq += 1
        data = encode(Envelope(source=self.source, epoch=self.epoch, seq=self.seq, payload=payload))
        if in_memory:
            self._keep(self.seq, data)
            if not self.sender_driven:
                self.sent_to = self.seq
            return data
        try:
            self.spool.append(self.seq, data)
        except OSError as exc:  # the spool's disk is full: the seq stays unused
            self.seq -= 1
            raise OutboxFull(f"{self.source}: spool {self.spool.path}: {exc}") from exc
        return None

    def _keep(self, seq: int, data: bytes) -> None:
        if not self._pending:
            self._oldest_sent_at = time.monotonic()
        self._pending[seq] = data

    def refill(self) -> list[bytes]:
        """Move spooled events into memory as far as it has room; returns them to send now, in
        order (sender-driven: nothing, the sender finds them in `unsent`)."""
        moved: list[bytes] = []
        while self.spooled and len(self._pending) < self.memory_max:
            seq, data = self.spool.pop()
            self._keep(seq, data)
            if not self.sender_driven:
                moved.append(data)
                self.sent_to = seq
        return moved

    def unsent(self, limit: int) -> list[tuple[int, bytes]]:
        """The next events in memory not yet handed to the socket, in seq order."""
        out = []
        seq = self.sent_to + 1
        while len(out) < limit and seq in self._pending:
            out.append((seq, self._pending[seq]))
            seq += 1
        return out

    def mark_sent(self, seq: int) -> None:
        if seq > self.sent_to:
            if self.sent_to <= self.acked:  # nothing was in flight: the resend timer starts now
                self._oldest_sent_at = time.monotonic()
            self.sent_to = seq

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def ack(self, epoch: int, seq: int) -> None:
        """Forget everything up to `seq` (acks for another epoch are a previous life's: ignored)."""
        if epoch != self.epoch or seq <= self.acked:
            return
        self.acked = min(seq, self.seq)
        while self._pending and next(iter(self._pending)) <= self.acked:
            self._pending.popitem(last=False)
        self._oldest_sent_at = time.monotonic()

    def resend_from(self, epoch: int, seq: int) -> list[bytes]:
        """The writer wants everything after `seq` again.

        Not an acknowledgement: the writer may have accepted up to `seq` without syncing it
        yet, and a crash before the sync would lose what an ack here had forgotten.
        """
        if epoch != self.epoch:
            return []
        now = time.monotonic()
        if self.sender_driven:
            if now - self._resent_at >= self.resend_after_s or seq < self._resent_to:
                self._rewind(seq, now)
            return []
        # Live events interleave with a window in flight, so the writer asks again before the
        # window has arrived: send only what follows it (what was just re-sent is on its way).
        if now - self._resent_at < self.resend_after_s and seq < self._resent_to:
            seq = self._resent_to
        window = [(s, data) for s, data in islice(((s, d) for s, d in self._pending.items() if seq < s <= self.sent_to),
                                                  self.resend_window)]
        if window:
            self._resent_to, self._resent_at = window[-1][0], now
        self._oldest_sent_at = now
        return [data for _, data in window]

    def due(self) -> list[bytes]:
        """The oldest unacknowledged events (one window), if the oldest has waited past the timeout."""
        if self.sent_to > self.acked and time.monotonic() - self._oldest_sent_at >= self.resend_after_s:
            self._oldest_sent_at = time.monotonic()
            if self.sender_driven:
                self._rewind(self.acked, self._oldest_sent_at)
                return []
            return [d for s, d in islice(self._pending.items(), self.resend_window) if s <= self.sent_to]
        return []

    def _rewind(self, seq: int, now: float) -> None:
        """Sender-driven re-send: everything after `seq` goes out again, in order."""
        target = max(seq, self.acked)
        if target < self.sent_to:
            self.sent_to = target
            self._resent_to, self._resent_at = target, now
            self._oldest_sent_at = now
