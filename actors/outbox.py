"""A collector's outbox: every event it sent, kept until the writer acknowledges it (design §3).

Acks are cumulative, so the outbox is an ordered map seq -> encoded envelope. Resending is
go-back-N: when the oldest unacknowledged event is older than the timeout (or the writer asks),
the events from it on are sent again; the writer keeps only the next expected seq, so a resend
never doubles a row. A resend is at most `resend_window` events: re-sending a whole backlog of
tens of thousands at every timeout saturates the validator with copies and the mesh never
catches up (congestion collapse); the writer asks for the next window as soon as it has the
previous one.
"""

import random
import time
from collections import OrderedDict
from itertools import islice

import msgspec

from messages.codec import encode
from messages.envelope import Envelope
from messages.events import AnyEvent


def new_epoch() -> int:
    """A random id per process start: a restarted collector's seq 1 is not mistaken for a re-send."""
    return random.getrandbits(62)


class Outbox:
    def __init__(self, source: str, epoch: int | None = None, *, resend_after_s: float = 2.0, resend_window: int = 5000):
        self.source = source
        self.epoch = new_epoch() if epoch is None else epoch
        self.resend_after_s = resend_after_s
        self.resend_window = resend_window
        self.seq = 0  # last seq assigned
        self.acked = 0  # highest seq the writer made durable
        self._pending: OrderedDict[int, bytes] = OrderedDict()
        self._oldest_sent_at = 0.0
        self._resent_to, self._resent_at = 0, 0.0  # the last window re-sent on request, and when

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, event: AnyEvent) -> bytes:
        """Number the event and keep it; returns the wire message to send now."""
        self.seq += 1
        data = encode(Envelope(source=self.source, epoch=self.epoch, seq=self.seq, payload=msgspec.Raw(encode(event))))
        if not self._pending:
            self._oldest_sent_at = time.monotonic()
        self._pending[self.seq] = data
        return data

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
        # Live events interleave with a window in flight, so the writer asks again before the
        # window has arrived: send only what follows it (what was just re-sent is on its way).
        if now - self._resent_at < self.resend_after_s and seq < self._resent_to:
            seq = self._resent_to
        window = [(s, data) for s, data in islice(((s, d) for s, d in self._pending.items() if s > seq), self.resend_window)]
        if window:
            self._resent_to, self._resent_at = window[-1][0], now
        self._oldest_sent_at = now
        return [data for _, data in window]

    def due(self) -> list[bytes]:
        """The oldest unacknowledged events (one window), if the oldest has waited past the timeout."""
        if self._pending and time.monotonic() - self._oldest_sent_at >= self.resend_after_s:
            self._oldest_sent_at = time.monotonic()
            return list(islice(self._pending.values(), self.resend_window))
        return []
