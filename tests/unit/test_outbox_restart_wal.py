"""The pieces of the storage contract that are pure logic: outbox, restart policy, WAL."""

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
    box = Outbox("collector.x", epoch=7, memory_max=3, spool_path=tmp_path / "x.spool", spool_max_bytes=10_000)
    sent = [box.add(oi(i)) for i in range(8)]
    assert [s is not None for s in sent] == [True] * 3 + [False] * 5  # 3 in flight, 5 on disk
    assert len(box) == 8 and box.spooled == 5
    assert box.refill() == []  # no room yet
    box.ack(epoch=7, seq=2)
    assert [decode_message(d).seq for d in box.refill()] == [4, 5]
    box.ack(epoch=7, seq=5)
    assert [decode_message(d).seq for d in box.refill()] == [6, 7, 8]
    assert box.spooled == 0 and (tmp_path / "x.spool").stat().st_size == 0  # emptied once read back
    assert oct((tmp_path / "x.spool").stat().st_mode & 0o777) == "0o600"


def test_a_full_outbox_refuses_without_using_a_seq(tmp_path):
    from actors.outbox import OutboxFull

    box = Outbox("collector.x", epoch=7, memory_max=2, spool_path=tmp_path / "x.spool", spool_max_bytes=600)
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
