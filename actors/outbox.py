"""A collector's outbox: every event it sent, kept until the writer acknowledges it (design §3).

Acks are cumulative, so the outbox is an ordered map seq -> encoded envelope. Resending is
go-back-N: when the oldest unacknowledged event is older than the timeout (or the writer asks),
the events from it on are sent again; the writer keeps only the next expected seq, so a resend
never doubles a row. A resend is at most `resend_window` events: re-sending a whole backlog of
tens of thousands at every timeout saturates the validator with copies and the mesh never
catches up (congestion collapse); the writer asks for the next window as soon as it has the
previous one.

The outbox is bounded: `memory_max` events in memory (the window in flight), then up to
`spool_max_bytes` on disk only (sent in order when memory has room). Beyond both, `add` raises
`OutboxFull` without using a seq, and the caller records a gap. With a spool directory every
event is also written to the outbox's log on disk when it is numbered (actors/spool.py), so a
backlog survives a stop, a restart or a crash: `resume` re-sends it from the next process.

Two ways to send: the caller sends what `add` returns at once (the default), or, with
`sender_driven=True`, a sender task takes `next_batch()` in seq order and awaits the socket,
calling `mark_sent`; then a slow bus delays events inside the bounded outbox, in order, instead of
making holes that cost re-send round trips. There a re-send is a rewind of the sender's cursor
(go-back-N through the same ordered, paced path), ignored while the sender is still streaming
the range from a rewind less than `resend_after_s` ago.

The sender takes what waits with `next_batch`: the events waiting right now (up to
BATCH_MAX_EVENTS / BATCH_MAX_BYTES) in one `Batch` message. It never waits for a batch to fill:
at a low rate every event goes out alone at once (no added latency), under load the events that
queued while the previous batch was being sent go together. In memory an event is its encoded
payload; on disk it stays one `Envelope` frame (the log's format is unchanged, so an earlier
version's backlog is read as is). The one-event API (`add`'s return, `resend_from`, `due`,
`refill`, `unsent`: `derivs history`'s hand-off and tests) gives single `Envelope` messages.

Invariants (tests/unit/test_outbox_properties.py drives them in random orders):
`acked <= sent_to <= seq`; of the events (acked, seq] those up to `mem_hi` are in memory and
the rest on disk only; (acked, sent_to] are in flight (re-sent after `resend_after_s` without
progress) and (sent_to, seq] will be sent. An ack beyond `sent_to` (originals still
queued in ZeroMQ overtook a rewind) moves `sent_to` with it.
"""

import os
import random
import time
from bisect import bisect_right
from collections import OrderedDict, deque
from itertools import islice

import msgspec

from actors.spool import OutboxLog, Position, Recovered, frame_size
from messages.codec import encode
from messages.envelope import Batch, Envelope
from messages.events import AnyEvent

MARK_ACKED_EVERY_S = 0.5  # how often the log records how far the writer acknowledged
BUCKET_NS = 100_000_000  # events are summed up per 100 ms of receive time: when lost seqs happened
LIVE_NS = 60_000_000_000  # an event older than this when received is history (refilled by the backfill)
BATCH_MAX_EVENTS = 2000  # per message on the wire: the validator yields to its event loop between messages
# Well under the bus's message limit (actors/inbox.py MAX_MESSAGE_BYTES), also once the validator
# has added a reason for every event it refuses (a malformed event's is about as long as the event).
BATCH_MAX_BYTES = 128 << 10

_envelope_decoder = msgspec.msgpack.Decoder(Envelope)


class OutboxFull(Exception):
    """Memory and spool are full: the event was not numbered; record it as a gap."""


def new_epoch() -> int:
    """A random id per outbox life: another life's seq 1 is not mistaken for a re-send."""
    return random.getrandbits(62)


class Outbox:
    def __init__(self, source: str, epoch: int | None = None, *, resend_after_s: float = 2.0, resend_window: int = 5000,
                 memory_max: int = 1_000_000, spool_dir: str | os.PathLike | None = None, spool_max_bytes: int = 0,
                 sender_driven: bool = False, log: OutboxLog | None = None):
        self.source = source
        self.sender_driven = sender_driven
        self.epoch = new_epoch() if epoch is None else epoch
        self.resend_after_s = resend_after_s
        self.resend_window = resend_window
        self.memory_max = memory_max
        self.spool_max_bytes = spool_max_bytes
        if log is None and spool_dir is not None and spool_max_bytes > 0:
            log = OutboxLog(spool_dir, source, self.epoch)
        self.log = log
        self.seq = 0  # last seq assigned
        self.acked = 0  # highest seq the writer made durable
        self.sent_to = 0  # highest seq handed to the socket
        self.mem_hi = 0  # highest seq in memory; (mem_hi, seq] wait on disk only
        self.spooled = self.spooled_bytes = 0
        self._read_at = Position(1, 0)  # where the log holds seq mem_hi + 1 (while spooled)
        self._pending: OrderedDict[int, msgspec.Raw] = OrderedDict()  # seq -> encoded event
        self._oldest_sent_at = 0.0
        self._resent_to, self._resent_at = 0, 0.0  # the last window re-sent on request, and when
        self._marked_at = 0.0
        self.lost_block = (0, 0)  # the seqs first..last reported lost (writer's WAL), contiguous
        # [first seq, min ts_event, max ts_event, first ts_recv] per bucket: an hour at 10/s
        self._buckets: deque[list[int]] = deque(maxlen=36_000)

    @classmethod
    def resume(cls, source: str, found: Recovered, **kwargs) -> "Outbox":
        """The outbox of an earlier life, from its log: it re-sends what was not acknowledged and
        takes no new events."""
        box = cls(source, found.log.epoch, log=found.log, sender_driven=True, **kwargs)
        box.seq, box.acked = found.log.last_seq, found.acked
        box.sent_to = box.mem_hi = found.acked
        box.spooled, box.spooled_bytes = found.pending, found.pending_bytes
        box._read_at = found.log.start()
        box._buckets.append([found.acked + 1, found.log.created_ns, time.time_ns(), 0])
        return box

    def __len__(self) -> int:
        """Unacknowledged events: in memory and waiting on disk."""
        return len(self._pending) + self.spooled

    @property
    def finished(self) -> bool:
        return self.acked >= self.seq

    def add(self, event: AnyEvent, *, force: bool = False) -> bytes | None:
        """Number the event and keep it; returns the wire message to send now (one `Envelope`), or
        None if it went to the spool (sent later by `refill`) or a sender sends it (`sender_driven`
        without a log). `force` ignores the bounds (a few gap records).

        Raises OutboxFull (no seq used) when memory and spool are full.
        """
        payload = msgspec.Raw(encode(event))
        # Seqs go out in order: once events wait on disk, new ones queue behind them.
        in_memory = not self.spooled and (force or len(self._pending) < self.memory_max)
        if not in_memory and not force and (self.log is None or self.spooled_bytes + len(payload) + 64 > self.spool_max_bytes):
            raise OutboxFull(f"{self.source}: {len(self._pending)} events in memory and {self.spooled} on disk unacknowledged")
        seq = self.seq + 1
        data = None if self.sender_driven and self.log is None else self._envelope(seq, payload)
        position = None
        if self.log is not None:
            try:
                self._catch_up_log()
                position = self.log.append(seq, data)
            except OSError as exc:
                if not in_memory:  # the spool's disk is full: the seq stays unused
                    raise OutboxFull(f"{self.source}: spool {self.log.dir}: {exc}") from exc
                # in memory only until the disk has room again (the log catches up then)
        self.seq = seq
        self._note_time(seq, event)
        if not in_memory:
            if not self.spooled:
                self._read_at = position
            self.spooled += 1
            self.spooled_bytes += frame_size(data)
            return None
        self._keep(seq, payload)
        self.mem_hi = seq
        if not self.sender_driven:
            self.sent_to = seq
        return data

    def _catch_up_log(self) -> None:
        """Write what waited in memory only while the disk was full (acknowledged ones are skipped)."""
        if self.log.last_seq < self.seq:
            for seq in range(max(self.log.last_seq, self.acked) + 1, self.seq + 1):
                self.log.append(seq, self._envelope(seq, self._pending[seq]))

    def _envelope(self, seq: int, payload: msgspec.Raw) -> bytes:
        return encode(Envelope(source=self.source, epoch=self.epoch, seq=seq, payload=payload))

    def _keep(self, seq: int, payload: msgspec.Raw) -> None:
        if not self._pending:
            self._oldest_sent_at = time.monotonic()
        self._pending[seq] = payload

    def refill(self) -> list[bytes]:
        """Move spooled events into memory as far as it has room; returns them to send now, in
        order (sender-driven: nothing, the sender finds them in `unsent`)."""
        moved: list[bytes] = []
        if not self.spooled or len(self._pending) >= self.memory_max:
            return moved
        for seq, data, after in self.log.frames(self._read_at):
            self._read_at = after
            if seq <= self.mem_hi:  # a resumed log's acknowledged head
                continue
            self.mem_hi = seq
            self.spooled -= 1
            self.spooled_bytes -= frame_size(data)
            if seq > self.acked:  # (the writer may have acknowledged it in an earlier life)
                self._keep(seq, _envelope_decoder.decode(data).payload)
                if not self.sender_driven:
                    moved.append(data)
                    self.sent_to = seq
            if not self.spooled or len(self._pending) >= self.memory_max:
                break
        else:
            self.spooled = self.spooled_bytes = 0  # the log ended early: nothing more to read
        return moved

    def unsent(self, limit: int) -> list[tuple[int, bytes]]:
        """The next events in memory not yet handed to the socket, in seq order."""
        out = []
        seq = self.sent_to + 1
        while len(out) < limit and seq in self._pending:
            out.append((seq, self._envelope(seq, self._pending[seq])))
            seq += 1
        return out

    def next_batch(self, max_events: int = BATCH_MAX_EVENTS, max_bytes: int = BATCH_MAX_BYTES) -> tuple[int, bytes] | None:
        """The events waiting to be sent as one `Batch` message, and its last seq (call
        `mark_sent` with it once sent); None if nothing waits. At least one event, however big."""
        payloads, size = [], 0
        seq = self.sent_to + 1
        while len(payloads) < max_events and (payload := self._pending.get(seq)) is not None:
            if payloads and size + len(payload) > max_bytes:
                break
            payloads.append(payload)
            size += len(payload)
            seq += 1
        if not payloads:
            return None
        return seq - 1, encode(Batch(source=self.source, epoch=self.epoch, seq=self.sent_to + 1, events=payloads))

    def mark_sent(self, seq: int) -> None:
        if seq > self.sent_to:
            if self.sent_to <= self.acked:  # nothing was in flight: the resend timer starts now
                self._oldest_sent_at = time.monotonic()
            self.sent_to = seq

    def close(self) -> None:
        """At exit: a log that still holds events stays for the next life of this source."""
        if self.log is not None:
            self.log.close(finished=self.finished)
            self.log = None

    def ack(self, epoch: int, seq: int) -> None:
        """Forget everything up to `seq` (acks for another epoch are a previous life's: ignored)."""
        if epoch != self.epoch or seq <= self.acked:
            return
        self.acked = min(seq, self.seq)
        while self._pending and next(iter(self._pending)) <= self.acked:
            self._pending.popitem(last=False)
        self.sent_to = max(self.sent_to, self.acked)  # originals overtook a rewind: sent after all
        if self.finished:  # (a resumed log's spooled frames may all have been acknowledged)
            self.spooled = self.spooled_bytes = 0
            self.mem_hi = self.seq
        now = time.monotonic()
        self._oldest_sent_at = now
        if self.log is not None:
            self.log.forget(self.acked)
            if now - self._marked_at >= MARK_ACKED_EVERY_S or self.finished:
                self._marked_at = now
                self.log.mark_acked(self.acked)

    def lost(self, after: int) -> list[tuple[int, int]]:
        """The writer asks for what follows `after`, but we forgot up to `acked` when it had
        acknowledged them (its WAL lost them): the seq ranges (first, last) newly lost. They
        join `lost_block`, which the heartbeats announce (the writer stops waiting for them)."""
        if after >= self.acked:
            return []
        lo, hi = self.lost_block
        if not hi or after + 1 > hi + 1:  # nothing reported yet, or a new loss after the block
            self.lost_block = (after + 1, self.acked)
            return [(after + 1, self.acked)]
        new = [(after + 1, lo - 1)] if after + 1 < lo else []
        if self.acked > hi:
            new.append((hi + 1, self.acked))
        self.lost_block = (min(lo, after + 1), max(hi, self.acked))
        return new

    def _note_time(self, seq: int, event: AnyEvent) -> None:
        ts = event.ts_event if 0 <= event.ts_recv - event.ts_event < LIVE_NS else event.ts_recv
        bucket = self._buckets[-1] if self._buckets else None
        if bucket is None or event.ts_recv - bucket[3] >= BUCKET_NS:
            self._buckets.append([seq, ts, ts, event.ts_recv])
        else:
            bucket[1], bucket[2] = min(bucket[1], ts), max(bucket[2], ts)

    def happened_between(self, first: int, last: int) -> tuple[int, int]:
        """A time range (ns) that holds the event times of the live events `first`..`last`."""
        if not self._buckets:
            now = time.time_ns()
            return now, now
        seqs = [b[0] for b in self._buckets]
        covering = list(self._buckets)[max(0, bisect_right(seqs, first) - 1):max(1, bisect_right(seqs, last))]
        return min(b[1] for b in covering), max(b[2] for b in covering)

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
        return [self._envelope(s, payload) for s, payload in window]

    def due(self) -> list[bytes]:
        """The oldest unacknowledged events (one window), if the oldest has waited past the timeout."""
        if self.sent_to > self.acked and time.monotonic() - self._oldest_sent_at >= self.resend_after_s:
            self._oldest_sent_at = time.monotonic()
            if self.sender_driven:
                self._rewind(self.acked, self._oldest_sent_at)
                return []
            return [self._envelope(s, p) for s, p in islice(self._pending.items(), self.resend_window) if s <= self.sent_to]
        return []

    def _rewind(self, seq: int, now: float) -> None:
        """Sender-driven re-send: everything after `seq` goes out again, in order."""
        target = max(seq, self.acked)
        if target < self.sent_to:
            self.sent_to = target
            self._resent_to, self._resent_at = target, now
            self._oldest_sent_at = now
