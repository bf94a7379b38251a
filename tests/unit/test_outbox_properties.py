"""The outbox under every order of events hypothesis can find (issue 13: no stall, no loss).

A collector's outboxes (the live one and those resumed from an earlier life's log) talk to a
model of the writer over two FIFO channels, as on the mesh (collector -> validator -> writer and
back; ZeroMQ keeps order per connection). Rules add events, send, deliver, sync and acknowledge,
rewind on timeout, drop what the validator held (a kill), crash the collector (its log on disk
survives) and cut the writer's WAL (acknowledged events lost). After any sequence, a fair run
with no more faults must deliver every numbered event to the writer exactly once, except the
ranges the outbox reported lost because the writer's WAL lost them after acknowledging.

The writer model follows actors/writer.py: it accepts only the next expected seq per (source,
epoch), asks for a re-send from its last seq when it sees a hole or a heartbeat past it, acks
what it synced, and stops waiting for events a heartbeat says were acknowledged and forgotten.
"""

import shutil
import tempfile
from collections import deque
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.outbox import Outbox, OutboxFull
from actors.spool import OutboxLog
from messages.codec import decode_event, decode_message, encode
from messages.envelope import Ack, Heartbeat, ResendFrom
from messages.events import OpenInterest

SOURCE = "collector.x"
T0 = 1_750_000_000_000_000_000


def event(i: int) -> OpenInterest:
    return OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE",
                        ts_event=T0 + i, ts_recv=T0 + i * 1_000_000, open_interest=float(i), open_interest_value=1.0)


class WriterModel:
    def __init__(self):
        self.last: dict[int, int] = {}  # epoch -> last accepted seq
        self.durable: dict[int, int] = {}
        self.stored: dict[int, list[tuple[int, int]]] = {}  # epoch -> [(seq, event id)] in the WAL/catalog

    def receive(self, data, back: deque) -> None:
        msg = decode_message(data)
        last = self.last.get(msg.epoch, 0)
        if isinstance(msg, Heartbeat):
            if msg.lost_from <= last + 1 <= msg.forgotten:
                self.last[msg.epoch] = self.durable[msg.epoch] = last = msg.forgotten
            if msg.seq > last:
                back.append(ResendFrom(source=SOURCE, epoch=msg.epoch, seq=last))
        elif msg.seq == last + 1:
            self.last[msg.epoch] = msg.seq
            self.stored.setdefault(msg.epoch, []).append((msg.seq, int(decode_event(msg.payload).open_interest)))
        elif msg.seq <= last:
            if msg.epoch in self.durable:
                back.append(Ack(source=SOURCE, epoch=msg.epoch, seq=self.durable[msg.epoch]))
        else:
            back.append(ResendFrom(source=SOURCE, epoch=msg.epoch, seq=last))

    def sync(self, back: deque) -> None:
        for epoch, seq in self.last.items():
            if self.durable.get(epoch) != seq:
                self.durable[epoch] = seq
                back.append(Ack(source=SOURCE, epoch=epoch, seq=seq))

    def cut_wal(self, epoch: int, keep: int) -> None:
        """The WAL loses every event of `epoch` after `keep` (they were acknowledged)."""
        self.stored[epoch] = [(s, i) for s, i in self.stored.get(epoch, []) if s <= keep]
        self.last[epoch] = self.durable[epoch] = min(keep, self.last.get(epoch, 0))


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-prop-"))
        self.epochs = 0  # epochs are counted here, not random: hypothesis replays must draw alike
        self.live = self._new_box()
        self.earlier: list[Outbox] = []
        self.writer = WriterModel()
        self.net: deque = deque()  # collector -> writer
        self.back: deque = deque()  # writer -> collector
        self.numbered: dict[int, dict[int, int]] = {}  # epoch -> seq -> event id
        self.lost: dict[int, list[tuple[int, int]]] = {}
        self.next_id = 0

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def _new_box(self) -> Outbox:
        self.epochs += 1
        return Outbox(SOURCE, self.epochs, memory_max=4, spool_dir=self.dir, spool_max_bytes=1_500, sender_driven=True,
                      resend_after_s=0.0)

    @property
    def boxes(self) -> list[Outbox]:
        return [*self.earlier, self.live]

    def _box(self, epoch: int) -> Outbox | None:
        return next((b for b in self.boxes if b.epoch == epoch), None)

    # -- the collector ----------------------------------------------------------------------

    @rule(n=st.integers(1, 6))
    def add(self, n):
        for _ in range(n):
            try:
                self.live.add(event(self.next_id))
            except OutboxFull:
                pass  # not numbered: the collector records a gap, the property has nothing to check
            else:
                self.numbered.setdefault(self.live.epoch, {})[self.live.seq] = self.next_id
            self.next_id += 1

    @rule(limit=st.integers(1, 5))
    def send(self, limit):
        for box in self.boxes:
            box.refill()
            for seq, data in box.unsent(limit):
                self.net.append(data)
                box.mark_sent(seq)

    @rule()
    def timeout(self):
        for box in self.boxes:
            box.due()

    @rule()
    def heartbeat(self):
        for box in self.boxes:
            self.net.append(_heartbeat(box))

    @rule()
    def receive_back(self):
        if self.back:
            self._on_back(self.back.popleft())

    def _on_back(self, msg) -> None:
        box = self._box(msg.epoch)
        if box is None:
            return
        if isinstance(msg, Ack):
            box.ack(msg.epoch, msg.seq)
            if box is not self.live and box.finished:
                box.close()  # its log goes; the box stays, to tell a writer that lost its tail
        else:
            if lost := box.lost(msg.seq):
                self.lost.setdefault(box.epoch, []).extend(lost)
                self.net.append(_heartbeat(box))
            box.resend_from(msg.epoch, msg.seq)

    @rule()
    def crash_collector(self):
        """kill -9: memory is gone, the log stays; the next life resumes it and starts a new epoch."""
        for box in self.boxes:
            if box.log is not None:
                box.log._close_fd()
        self.earlier = [Outbox.resume(SOURCE, found, memory_max=4, spool_max_bytes=1_500, resend_after_s=0.0)
                        for found in OutboxLog.recover(self.dir, SOURCE)]
        for box in self.earlier:
            if box.finished:  # as the collector does: nothing to send, but it still heartbeats
                box.close()
        self.live = self._new_box()

    # -- the bus and the writer -------------------------------------------------------------

    @rule(n=st.integers(1, 8))
    def deliver(self, n):
        for _ in range(min(n, len(self.net))):
            self.writer.receive(self.net.popleft(), self.back)

    @rule()
    def sync(self):
        self.writer.sync(self.back)

    @rule()
    def kill_validator(self):
        """What the validator held in its queues is gone, both ways."""
        self.net.clear()
        self.back.clear()

    def _cuttable(self) -> list[int]:
        """Epochs a cut WAL can be noticed for: their outbox still exists, so it says how far it
        was acknowledged. (A stream whose sender is gone for good has nobody left to tell the
        writer what it lost: the protocol cannot detect that; README, storage contract.)"""
        return sorted(e for e, d in self.writer.durable.items() if d and self._box(e) is not None)

    @precondition(lambda self: self._cuttable())
    @rule(data=st.data())
    def cut_wal(self, data):
        epoch = data.draw(st.sampled_from(self._cuttable()))
        keep = data.draw(st.integers(0, self.writer.durable[epoch] - 1))
        self.writer.cut_wal(epoch, keep)

    # -- what must hold ---------------------------------------------------------------------

    @invariant()
    def cursors_are_ordered(self):
        for box in self.boxes:
            assert box.acked <= box.sent_to <= box.seq, (box.acked, box.sent_to, box.seq)
            assert len(box) >= box.seq - box.acked, "an unacknowledged event is neither in memory nor on disk"

    def settle(self):
        """A fair run with no faults: everything numbered reaches the writer (or was reported lost)."""
        for _ in range(400):  # each round as the collector's 1 s tick: heartbeat, overdue re-send, send
            self.heartbeat()
            self.timeout()
            self.send(1000)
            self.deliver(10_000)
            self.sync()
            answers = len(self.back)
            while self.back:
                self._on_back(self.back.popleft())
            if all(len(b) == 0 for b in self.boxes) and not self.net and not answers:
                break
        for epoch, seqs in self.numbered.items():
            stored = self.writer.stored.get(epoch, [])
            stored_seqs = [s for s, _ in stored]
            assert len(stored_seqs) == len(set(stored_seqs)), f"epoch {epoch}: a seq stored twice"
            lost = {s for a, b in self.lost.get(epoch, []) for s in range(a, b + 1)}
            missing = set(seqs) - set(stored_seqs) - lost
            assert not missing, f"epoch {epoch}: never stored and never reported lost: {sorted(missing)[:10]}"
            assert all(seqs[s] == i for s, i in stored), "a seq carried another event than the one numbered"
        assert all(len(b) == 0 for b in self.boxes), "the outbox never drained"


def _heartbeat(box: Outbox) -> bytes:
    lost_from, forgotten = box.lost_block
    return encode(Heartbeat(source=SOURCE, epoch=box.epoch, seq=box.sent_to, ts=0, lost_from=lost_from, forgotten=forgotten))


class SettlingMachine(OutboxMachine):
    def teardown(self):
        try:
            self.settle()
        finally:
            super().teardown()


SettlingMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
test_outbox_never_stalls_and_never_loses = SettlingMachine.TestCase
