"""The batched bus keeps the storage contract: the real validator and writer processes, a sender
that numbers and re-sends like a collector (the project's `Outbox`, batches of up to
BATCH_MAX_EVENTS events per message), the catalog loaded through ParquetDataCatalog.

- a batch with refused events in it: they alone are dead letters, their neighbours are rows;
- `kill -9` of the writer or the validator while batches are in flight: every event the sender
  numbered is stored exactly once;
- an upgrade mid-outage: a WAL and a spool written by the version before batches
  (tests/fixtures/bus_v1, one event per message) are replayed and re-sent: nothing lost, nothing doubled.
"""

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import pytest
import yaml
import zmq

from actors.outbox import BATCH_MAX_EVENTS, Outbox
from actors.spool import OutboxLog
from actors.topology import BusConfig
from messages.codec import decode_message, encode
from messages.envelope import Ack, Batch, ResendFrom
from messages.events import Liquidation
from tests.harness import ROOT, wait_for
from tests.integration.faults import read_liquidations

SOURCE = "collector.bybit"
T0 = 1_790_000_000_000_000_000
FIXTURES = ROOT / "tests" / "fixtures" / "bus_v1"
V1_EPOCH, V1_EVENTS, V1_REJECTED = 77, 60, 7  # what tests/fixtures/bus_v1/make_fixtures.py wrote


def liquidation(i: int, *, ts0: int = T0) -> Liquidation:
    return Liquidation(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=ts0 + i * 1_000_000,
                       ts_recv=ts0 + i * 1_000_000, side="LONG" if i % 2 else "SHORT", quantity=1.0 + i % 7, price=90_000.0 + i,
                       value=(1.0 + i % 7) * (90_000.0 + i))


class Pipe:
    """Validator and writer as separate processes, and a collector-like sender on the ingest socket."""

    def __init__(self, tmp: Path):
        self.tmp, self.catalog, self.run_dir = tmp, tmp / "catalog", tmp / "run"
        mesh = f"t{uuid.uuid4().hex[:8]}"
        self.topology = tmp / "topology.yaml"
        self.topology.write_text(yaml.safe_dump({
            "mesh": mesh, "catalog": str(self.catalog), "run_dir": str(self.run_dir),
            "venues": [{"venue": "bybit", "symbols": ["BTC/USDT:USDT"]}], "writer": {"flush_interval_s": 1.0}}))
        self.log = open(tmp / "actors.log", "ab")
        self.procs = {name: self.start(name) for name in ("writer", "validator")}
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, SOURCE.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(BusConfig().endpoint(mesh, "ingest"))

    def start(self, name: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", f"actors.{name}", "--topology", str(self.topology)],
                                cwd=ROOT, stdout=self.log, stderr=self.log)

    def pump(self, box: Outbox, block_ms: int = 20) -> None:
        """One turn of a collector: acks and re-send requests in, what waits out (in batches)."""
        if self.sock.poll(block_ms):
            while self.sock.poll(0):
                match decode_message(self.sock.recv()):
                    case Ack(epoch=epoch, seq=seq):
                        box.ack(epoch, seq)
                    case ResendFrom(epoch=epoch, seq=seq):
                        box.resend_from(epoch, seq)
        box.due()
        box.refill()
        while batch := box.next_batch():
            self.sock.send(batch[1])
            box.mark_sent(batch[0])
            box.refill()

    def send_all(self, box: Outbox, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not box.finished:
            assert time.monotonic() < deadline, f"acked {box.acked} of {box.seq}\n{self.actors_log()[-3000:]}"
            self.pump(box)

    def stop(self) -> dict:
        """SIGTERM (validator first, then the writer writes Parquet); the catalog via ParquetDataCatalog."""
        self.sock.close(0)
        for name in ("validator", "writer"):
            self.procs[name].send_signal(signal.SIGTERM)
            self.procs[name].wait(60)
        return read_liquidations(self.catalog)

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()

    def dead_letters(self) -> list[dict]:
        path = self.run_dir / "deadletter.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def actors_log(self) -> str:
        return (self.tmp / "actors.log").read_text(errors="replace")


@pytest.fixture
def pipe(tmp_path):
    p = Pipe(tmp_path)
    yield p
    p.kill()


def test_refused_events_of_a_batch_are_dead_letters_and_their_neighbours_are_stored(pipe):
    now = time.time_ns()
    good = [liquidation(i, ts0=now - 10**9) for i in range(5)]
    future = msgspec.structs.replace(good[0], ts_event=now + 3600 * 10**9)  # refused: an hour in the future
    not_an_event = msgspec.Raw(encode({"kind": "liquidation", "venue": "BYBIT"}))  # refused: fields missing
    events = [msgspec.Raw(encode(good[0])), msgspec.Raw(encode(good[1])), msgspec.Raw(encode(future)),
              msgspec.Raw(encode(good[2])), not_an_event, msgspec.Raw(encode(good[3])), msgspec.Raw(encode(good[4]))]
    pipe.sock.send(encode(Batch(source=SOURCE, epoch=5, seq=1, events=events)))  # one message, seqs 1..7
    acked = wait_for(lambda: pipe.sock.poll(100) and decode_message(pipe.sock.recv()), 30, 0, "the ack")
    assert acked == Ack(source=SOURCE, epoch=5, seq=7)  # the whole batch, dead letters included
    stored = pipe.stop()
    assert sorted(r[1:] for r in stored["liquidations"]) == [[e.ts_event, e.side, e.quantity, e.price] for e in good]
    letters = {d["seq"]: d for d in pipe.dead_letters()}
    assert sorted(letters) == [3, 5]
    assert "in the future" in letters[3]["reason"] and letters[3]["payload"]["ts_event"] == future.ts_event
    assert "invalid event" in letters[5]["reason"] and "missing required field" in letters[5]["reason"]


@pytest.mark.parametrize("victim", ["writer", "validator"])
def test_kill9_with_batches_in_flight_loses_nothing_and_doubles_nothing(pipe, victim):
    n, window = 40_000, 4 * BATCH_MAX_EVENTS
    box = Outbox(SOURCE, sender_driven=True, resend_after_s=1.0)
    while box.acked < n // 4 or box.sent_to - box.acked <= BATCH_MAX_EVENTS:  # durable ones, and batches on their way
        while box.seq < n and len(box) < window:
            box.add(liquidation(box.seq))
        pipe.pump(box, 0 if len(box) < window else 20)
        assert box.acked < n, "everything was acknowledged before the kill"
    pipe.procs[victim].send_signal(signal.SIGKILL)
    pipe.procs[victim].wait(10)
    pipe.procs[victim] = pipe.start(victim)  # what a coordinator does; the sender re-sends what is not acked
    while box.seq < n:
        box.add(liquidation(box.seq))
    pipe.send_all(box)
    stored = pipe.stop()
    ts = sorted(r[1] for r in stored["liquidations"])
    assert ts == [liquidation(i).ts_event for i in range(n)]  # each exactly once
    assert pipe.dead_letters() == []


def test_an_upgrade_mid_outage_replays_the_old_wal_and_resends_the_old_spool(tmp_path):
    """The writer's WAL (seqs 1..20, seq 7 rejected) and the collector's spool (1..60, acked to
    20) of the version before batches: the new writer replays the WAL, the new collector re-sends
    the spool's backlog in batches; every event once, the old dead letter kept."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "writer", run / "writer")
    shutil.copytree(FIXTURES / "spool", tmp_path / "spool")
    pipe = Pipe(tmp_path)
    try:
        [found] = OutboxLog.recover(tmp_path / "spool", SOURCE)
        assert (found.log.epoch, found.acked, found.pending) == (V1_EPOCH, 20, V1_EVENTS - 20)
        box = Outbox.resume(SOURCE, found, memory_max=15, spool_max_bytes=1 << 20)  # memory < backlog: refilled from disk
        pipe.send_all(box)
        box.close()
        stored = pipe.stop()
    finally:
        pipe.kill()
    ts = sorted(r[1] for r in stored["liquidations"])
    expected = [T0 + i * 10**9 for i in range(V1_EVENTS) if i + 1 != V1_REJECTED]  # fixture events: 1 s apart
    assert ts == expected
    [letter] = pipe.dead_letters()
    assert (letter["source"], letter["epoch"], letter["seq"]) == (SOURCE, V1_EPOCH, V1_REJECTED)
    assert "recovered 20 events from the WAL" in pipe.actors_log()  # 10 in the sealed segment, 10 after the checkpoint
    assert [r.pending for r in OutboxLog.recover(tmp_path / "spool", SOURCE)] == [0]  # the backlog is acknowledged
