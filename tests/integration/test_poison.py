"""Foreign or buggy senders on a running mesh under liquidation load: a poison event (a value no
file system or catalog takes) and forged events (a sender posing for another venue, an old
venue-less `derivs history` name, live data from a history hand-off), each sent by a raw ZeroMQ
DEALER with a valid envelope. Every one is dead-lettered (or refused) with its reason, storage
goes on: every liquidation the emulator pushed is in the catalog, loaded by ParquetDataCatalog."""

import json
import os
import random
import signal
import time

import msgspec
import pytest
import zmq

from actors.topology import load_topology
from actors.wal import Wal
from messages.codec import decode_message, encode
from messages.envelope import Ack, Envelope
from messages.events import Liquidation, OpenInterest
from tests.harness import mesh_log, wait_for
from tests.integration.faults import LoadedMesh, compare, read_liquidations, settle_and_stop

NOW = time.time_ns()
Y2016 = 1_464_739_200_000_000_000  # 2016-06-01: before any of these venues listed a perpetual
POISON_ID = "X" * 300 + "-USD-PERP.HYPERLIQUID"  # ENAMETOOLONG as a catalog directory
GOOD_OI = 12_345.678


def oi(instrument_id: str, value: float) -> OpenInterest:
    now = time.time_ns()
    return OpenInterest(venue="HYPERLIQUID", symbol="BTC/USDC:USDC", instrument_id=instrument_id, ts_event=now, ts_recv=now,
                        open_interest=value, open_interest_value=value * 100.0)


def liquidation(venue: str, instrument_id: str, ts: int) -> Liquidation:
    return Liquidation(venue=venue, symbol="BTC/USDT:USDT", instrument_id=instrument_id, ts_event=ts, ts_recv=ts,
                       side="LONG", quantity=777.0, price=1.0, value=777.0)


class Sender:
    """A raw DEALER on the mesh's ingest endpoint, numbering its envelopes like a collector."""

    def __init__(self, ctx: zmq.Context, endpoint: str, identity: str):
        self.identity, self.epoch, self.seq = identity, random.getrandbits(48), 0
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, event) -> None:
        self.seq += 1
        self.sock.send(encode(Envelope(source=self.identity, epoch=self.epoch, seq=self.seq, payload=msgspec.Raw(encode(event)))))

    def acked(self) -> int:
        """The highest seq the writer acknowledged (a dead letter is acknowledged too)."""
        acked = 0
        while self.sock.poll(200):
            msg = decode_message(self.sock.recv())
            if isinstance(msg, Ack) and msg.epoch == self.epoch:
                acked = max(acked, msg.seq)
        return acked


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    mesh = LoadedMesh(tmp_path_factory.mktemp("poison"))
    ctx = zmq.Context()
    try:
        mesh.start()
        mesh.liquidation_rate("bybit", 200)
        mesh.ctl("stop", "collector.hyperliquid")  # its name is free: our sender takes it without a handover
        ingest = load_topology(mesh.topology)[0].endpoint("ingest")
        posing = Sender(ctx, ingest, "collector.hyperliquid")
        history = Sender(ctx, ingest, f"cli.history.bybit.{os.getpid()}")
        old_name = Sender(ctx, ingest, "cli.history.12345")  # anyone could claim a venue-less history name
        time.sleep(0.5)  # the DEALERs connect
        posing.send(oi(POISON_ID, 1.0))  # seq 1: poison
        posing.send(liquidation("BYBIT", "BTCUSDT-LINEAR.BYBIT", Y2016))  # seq 2: another venue's data
        good = oi("BTC-USD-PERP.HYPERLIQUID", GOOD_OI)
        posing.send(good)  # seq 3: a good event of its own venue
        history.send(liquidation("BYBIT", "ETHUSDT-LINEAR.BYBIT", Y2016))  # live data from a history hand-off
        old_name.send(liquidation("BINANCE", "BTCUSDT-PERP.BINANCE", Y2016))
        # every seq accounted for by the writer: stored or dead-lettered, and the stream goes on
        wait_for(lambda: posing.acked() == 3, 30, 0.1, "the writer to acknowledge the posing sender's three events")
        wait_for(lambda: history.acked() == 1, 30, 0.1, "the writer to acknowledge the history sender's event")
        time.sleep(3.0)  # the load goes on after the poison
        signal_ns, exit_s = settle_and_stop(mesh, signal.SIGINT)
    finally:
        mesh.kill()
        ctx.destroy(linger=0)
    dead_path = mesh.run_dir / "deadletter.jsonl"
    dead = [json.loads(line) for line in dead_path.read_text().splitlines()] if dead_path.exists() else []
    stored = read_liquidations(mesh.catalog)
    return {"stored": stored, "dead": dead, "signal_ns": signal_ns, "truth": mesh.truth(), "log": mesh_log(mesh.topology),
            "returncode": mesh.proc.returncode, "catalog": mesh.catalog, "good_ts": good.ts_event,
            "validator_log": (mesh.run_dir / "logs" / "validator.log").read_text()}


def dead(run, source: str, seq: int) -> dict:
    [letter] = [d for d in run["dead"] if d["source"] == source and d["seq"] == seq]
    return letter


def test_a_poison_event_is_dead_lettered_and_every_real_event_is_stored(injected):
    letter = dead(injected, "collector.hyperliquid", 1)
    assert "instrument_id 'XXXX" in letter["reason"] and "(321 characters)" in letter["reason"], letter["reason"]
    assert "at most 60 characters" in letter["reason"] and letter["payload"]["instrument_id"] == POISON_ID
    bybit = compare(injected["truth"], injected["stored"], "BYBIT", injected["signal_ns"])
    assert bybit["expected"] > 1_000, "not under load"
    assert bybit["missing"] == [] and bybit["missing_in_gaps"] == [] and bybit["duplicates"] == [] and bybit["extra"] == []
    # the sender's next event, after the poison, is stored
    assert ["BTC-USD-PERP.HYPERLIQUID", injected["good_ts"]] in injected["stored"]["open_interest"]
    assert not list((injected["catalog"] / "data" / "custom_open_interest").glob("XXX*"))
    assert injected["returncode"] == 0 and "Traceback" not in injected["log"]


def test_events_of_another_venue_or_kind_than_the_sender_may_send_are_dead_lettered(injected):
    posing = dead(injected, "collector.hyperliquid", 2)
    assert "collector.hyperliquid may send HYPERLIQUID events only, not BYBIT" in posing["reason"]
    history = dead(injected, f"cli.history.bybit.{os.getpid()}", 1)
    assert "(derivs history) sends definitions, open-interest history (and its gaps) and settled funding only, not Liquidation" in history["reason"]
    assert "unknown peer b'cli.history.12345' refused" in injected["validator_log"]
    # none of the forged liquidations is in the catalog (ParquetDataCatalog reads it)
    assert [r for r in injected["stored"]["liquidations"] if r[1] < NOW or r[3] == 777.0] == []


def test_a_poison_event_in_the_wal_of_an_earlier_run_is_a_dead_letter_at_the_restart(tmp_path):
    """A WAL written under laxer rules (an older version): the restart replays it; the poison
    becomes a dead letter instead of blocking the writer again, and storage goes on."""
    mesh = LoadedMesh(tmp_path)
    wal = Wal(mesh.run_dir / "writer" / "wal.log")
    good = oi("BTC-USD-PERP.HYPERLIQUID", GOOD_OI)
    for seq, event in enumerate([oi(POISON_ID, 1.0), good], 1):
        wal.append(encode(Envelope(source="collector.hyperliquid", epoch=1, seq=seq, payload=msgspec.Raw(encode(event)))))
    wal.sync()
    wal.close()
    try:
        mesh.start()  # returns at the writer's first events: the replayed ones
        mesh.liquidation_rate("bybit", 200)
        wait_for(lambda: mesh.actor("writer")["events_in"] > 1_000, 60, 0.2, "live liquidations after the replay")
        signal_ns, _ = settle_and_stop(mesh, signal.SIGINT)
    finally:
        mesh.kill()
    dead = [json.loads(line) for line in (mesh.run_dir / "deadletter.jsonl").read_text().splitlines()]
    [letter] = [d for d in dead if d["source"] == "collector.hyperliquid" and d["epoch"] == 1]
    assert letter["seq"] == 1 and "instrument_id" in letter["reason"] and "length <= 60" in letter["reason"]
    stored = read_liquidations(mesh.catalog)
    assert ["BTC-USD-PERP.HYPERLIQUID", good.ts_event] in stored["open_interest"]
    bybit = compare(mesh.truth(), stored, "BYBIT", signal_ns)
    assert bybit["expected"] > 500 and bybit["missing"] == [] and bybit["duplicates"] == []
