"""The pieces of the storage contract that are pure logic: outbox, restart policy, WAL."""

import os
import time

import pytest

from actors.outbox import Outbox
from actors.restart import RestartTracker
from actors.topology import RestartPolicy
from actors.wal import Wal
from messages.codec import decode_event, decode_message
from messages.events import OpenInterest

T0 = 1_750_000_000_000_000_000


def oi(i: int) -> OpenInterest:
    return OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=T0 + i, ts_recv=T0 + i, open_interest=float(i), open_interest_value=1.0)


def test_outbox_numbers_without_holes_and_forgets_only_what_is_acked():
    box = Outbox("collector.x", epoch=5)
    sent = [decode_message(box.add(oi(i))) for i in range(5)]
    assert [m.seq for m in sent] == [1, 2, 3, 4, 5]
    assert decode_event(sent[2].payload).open_interest == 2.0
    box.ack(epoch=5, seq=3)
    assert len(box) == 2
    box.ack(epoch=4, seq=5)  # another life's ack: ignored
    assert len(box) == 2
    assert [decode_message(d).seq for d in box.resend_from(epoch=5, seq=3)] == [4, 5]


def test_a_resend_request_is_not_an_acknowledgement():
    # The writer asks from what it accepted, which may not be synced yet: keep it until an Ack.
    box = Outbox("collector.x", epoch=5)
    for i in range(5):
        box.add(oi(i))
    assert [decode_message(d).seq for d in box.resend_from(epoch=5, seq=3)] == [4, 5]
    assert len(box) == 5
    box.ack(epoch=5, seq=3)
    assert len(box) == 2


def test_outbox_resends_everything_unacked_after_the_timeout():
    box = Outbox("c", epoch=1, resend_after_s=0.05)
    for i in range(3):
        box.add(oi(i))
    assert box.due() == []
    time.sleep(0.06)
    assert [decode_message(d).seq for d in box.due()] == [1, 2, 3]
    assert box.due() == []  # the timer restarted with the resend


def test_restart_backoff_grows_resets_after_uptime_and_stops_a_crash_loop():
    tracker = RestartTracker(RestartPolicy(backoff_initial_s=1, backoff_max_s=8, reset_after_s=10, max_restarts=3, window_s=60))
    delays = [tracker.on_exit(now=i, uptime_s=0.1) for i in range(3)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4 and 3.2 <= delays[2] <= 4.8
    assert tracker.on_exit(now=3, uptime_s=0.1) is None  # 4 crashes in 60 s > 3
    calm = RestartTracker(RestartPolicy(backoff_initial_s=1, reset_after_s=10, max_restarts=3, window_s=5))
    for i in range(5):  # crashes 100 s apart, each after a long uptime: never failed, never growing
        assert 0.8 <= calm.on_exit(now=i * 100, uptime_s=50) <= 1.2


def test_wal_replays_complete_frames_ignores_a_torn_tail_and_seals(tmp_path):
    wal = Wal(tmp_path / "wal.log")
    for i in range(3):
        wal.append(b"frame%d" % i)
    wal.sync()
    with open(tmp_path / "wal.log", "ab") as f:
        f.write(b"\xff\x00\x00\x00partial")  # a crash in the middle of an append
    assert list(Wal(tmp_path / "wal.log").replay()) == [b"frame0", b"frame1", b"frame2"]
    segment = wal.seal(b"checkpoint")
    wal.append(b"after")
    wal.sync()
    assert list(wal.replay()) == [b"frame0", b"frame1", b"frame2", b"checkpoint", b"after"]
    wal.drop_sealed(segment)
    assert list(wal.replay()) == [b"checkpoint", b"after"]
    assert oct((tmp_path / "wal.log").stat().st_mode & 0o777) == "0o600"


def test_wal_segments_replay_in_order_and_drop_up_to_the_one_written(tmp_path):
    """A failed flush keeps its segment; the next flush seals another and drops both."""
    wal = Wal(tmp_path / "wal.log")
    segments = []
    for i in range(11):  # past 9: the order is numeric, not by name
        wal.append(b"row%d" % i)
        wal.sync()
        segments.append(wal.seal(b"cp%d" % i))
    frames = list(wal.replay())
    assert [f for f in frames if f.startswith(b"row")] == [b"row%d" % i for i in range(11)]
    wal.drop_sealed(segments[9])
    assert list(Wal(tmp_path / "wal.log").replay()) == [b"cp9", b"row10", b"cp10"]


def test_wal_crash_between_the_renames_of_a_seal_loses_nothing(tmp_path):
    wal = Wal(tmp_path / "wal.log")
    wal.append(b"row")
    wal.sync()
    wal.close()
    (tmp_path / "wal.log").rename(tmp_path / "wal.log.1.sealed")  # the log set aside, the new one not in place
    reopened = Wal(tmp_path / "wal.log")
    assert list(reopened.replay()) == [b"row"]
    assert reopened.seal(b"cp").name == "wal.log.2.sealed"


def test_outbox_spools_beyond_memory_and_sends_in_order_as_acks_free_room(tmp_path):
    from actors.spool import OutboxLog

    box = Outbox("collector.x", epoch=7, memory_max=3, spool_dir=tmp_path, spool_max_bytes=10_000)
    sent = [box.add(oi(i)) for i in range(8)]
    assert [s is not None for s in sent] == [True] * 3 + [False] * 5  # 3 in flight, 5 on disk
    assert len(box) == 8 and box.spooled == 5
    assert box.refill() == []  # no room yet
    box.ack(epoch=7, seq=2)
    assert [decode_message(d).seq for d in box.refill()] == [4, 5]
    box.ack(epoch=7, seq=5)
    assert [decode_message(d).seq for d in box.refill()] == [6, 7, 8]
    [segment] = tmp_path.glob("collector.x.7.*.seg")
    assert box.spooled == 0 and oct(segment.stat().st_mode & 0o777) == "0o600"
    box.ack(epoch=7, seq=8)
    box.close()
    [tombstone] = OutboxLog.recover(tmp_path, "collector.x")  # everything acknowledged: nothing to re-send,
    assert (tombstone.acked, tombstone.pending, tombstone.log.last_seq) == (8, 0, 8)  # only how far it went
    assert sum(p.stat().st_size for p in tmp_path.glob("*.seg")) == 28  # one ack marker


def test_a_backlog_survives_a_crash_and_is_resent_under_its_old_epoch_and_seqs(tmp_path):
    from actors.spool import OutboxLog

    box = Outbox("collector.x", epoch=7, memory_max=3, spool_dir=tmp_path, spool_max_bytes=10_000, sender_driven=True)
    for i in range(8):
        box.add(oi(i))  # 3 in memory, 5 on disk: all 8 in the log
    box.ack(epoch=7, seq=2)  # the writer had 1 and 2; then the process dies (no close)
    [found] = OutboxLog.recover(tmp_path, "collector.x")
    assert (found.log.epoch, found.acked, found.pending) == (7, 2, 6)
    again = Outbox.resume("collector.x", found, memory_max=4, spool_max_bytes=10_000)
    again.refill()
    assert [s for s, _ in again.unsent(10)] == [3, 4, 5, 6]  # memory holds 4 now; the rest follows
    sent = [decode_message(d) for _, d in again.unsent(10)]
    assert {(m.epoch, m.source) for m in sent} == {(7, "collector.x")}
    assert [decode_event(m.payload).open_interest for m in sent] == [2.0, 3.0, 4.0, 5.0]
    for seq, _ in again.unsent(10):
        again.mark_sent(seq)
    again.ack(epoch=7, seq=6)
    again.refill()
    assert [s for s, _ in again.unsent(10)] == [7, 8]
    again.ack(epoch=7, seq=8)
    assert again.finished and len(again) == 0
    again.close()
    assert [(f.acked, f.pending) for f in OutboxLog.recover(tmp_path, "collector.x")] == [(8, 0)]


def test_a_tombstone_is_forgotten_after_its_ttl(tmp_path, monkeypatch):
    from actors import spool

    box = Outbox("collector.x", epoch=7, spool_dir=tmp_path, spool_max_bytes=10_000)
    box.add(oi(1))
    box.ack(epoch=7, seq=1)
    box.close()
    monkeypatch.setattr(spool, "TOMBSTONE_TTL_S", 0)
    assert spool.OutboxLog.recover(tmp_path, "collector.x") == [] and list(tmp_path.glob("*.seg")) == []


def test_a_clean_stop_keeps_what_is_unacknowledged_and_a_torn_frame_is_cut(tmp_path):
    from actors.spool import OutboxLog

    box = Outbox("collector.x", epoch=9, spool_dir=tmp_path, spool_max_bytes=10_000)
    for i in range(3):
        box.add(oi(i))
    box.ack(epoch=9, seq=1)
    box.close()  # stopped with 2 and 3 unacknowledged
    [segment] = tmp_path.glob("*.seg")
    with open(segment, "ab") as f:
        f.write(b"\x04\x00\x00")  # a crash in the middle of a frame's header
    [found] = OutboxLog.recover(tmp_path, "collector.x")
    assert (found.acked, found.pending, len(found.torn)) == (1, 2, 1)
    assert "3 bytes" in found.torn[0]


def test_the_log_catches_up_after_the_disk_had_no_room(tmp_path, monkeypatch):
    """While appends fail the events wait in memory; the next append writes what it missed (minus
    what was acknowledged meanwhile), so a crash after that still finds every unacknowledged event."""
    from actors.spool import OutboxLog

    box = Outbox("collector.x", epoch=4, spool_dir=tmp_path, spool_max_bytes=10_000, sender_driven=True)
    box.add(oi(0))
    real_write = os.write
    monkeypatch.setattr("actors.spool.os.write", lambda fd, data: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    for i in range(1, 5):
        box.add(oi(i))  # seqs 2..5: memory only
    monkeypatch.setattr("actors.spool.os.write", real_write)
    box.ack(epoch=4, seq=3)
    box.add(oi(5))  # seq 6: writes 4, 5 and 6
    [found] = OutboxLog.recover(tmp_path, "collector.x")
    assert (found.acked, found.pending) == (3, 3)


def test_an_ack_beyond_the_send_cursor_does_not_stall_the_outbox():
    """Originals still queued in ZeroMQ reach the writer after a rewind; its ack then passes the
    cursor. Issue 13 finding 1: the sender found nothing unsent and the stream stopped."""
    box = Outbox("collector.x", epoch=3, sender_driven=True, resend_after_s=0.0)
    for i in range(10):
        box.add(oi(i))
    for seq, _ in box.unsent(10):
        box.mark_sent(seq)
    box.due()  # no ack in time: rewind to 0
    assert box.sent_to == 0
    for seq, _ in box.unsent(3):
        box.mark_sent(seq)  # the re-send has reached seq 3 ...
    box.ack(epoch=3, seq=8)  # ... when the originals' ack arrives
    assert box.sent_to == 8 and [s for s, _ in box.unsent(10)] == [9, 10]
    box.add(oi(10))
    assert [s for s, _ in box.unsent(10)] == [9, 10, 11]


def test_a_full_outbox_refuses_without_using_a_seq(tmp_path):
    from actors.outbox import OutboxFull

    box = Outbox("collector.x", epoch=7, memory_max=2, spool_dir=tmp_path, spool_max_bytes=600)
    with pytest.raises(OutboxFull, match="unacknowledged"):
        for i in range(100):
            box.add(oi(i))
    last = box.seq
    assert 2 < last < 100 and len(box) == last  # every numbered event is kept, the refused one has no seq
    assert box.add(oi(100), force=True) is None  # a gap record queues behind the spool, bounds or not
    box.ack(epoch=7, seq=2)
    assert [decode_message(d).seq for d in box.refill()] == [3, 4]  # continues right after memory, in order


def test_sender_driven_outbox_sends_in_order_and_resends_by_rewinding():
    box = Outbox("collector.x", epoch=3, sender_driven=True, resend_after_s=0.05)
    for i in range(6):
        box.add(oi(i))
    batch = box.unsent(4)
    assert [s for s, _ in batch] == [1, 2, 3, 4]
    for s, _ in batch:
        box.mark_sent(s)
    assert [s for s, _ in box.unsent(10)] == [5, 6]  # only what was never sent
    box.ack(epoch=3, seq=2)
    assert box.resend_from(epoch=3, seq=2) == []  # a hole after 2: the cursor goes back, nothing sent here
    assert [s for s, _ in box.unsent(10)] == [3, 4, 5, 6]
    box.mark_sent(6)
    assert box.resend_from(epoch=3, seq=3) == [] and box.sent_to == 6  # the rewind is still streaming: ignored
    time.sleep(0.06)
    assert box.due() == [] and box.sent_to == 2  # no ack for a while: back to the last ack
