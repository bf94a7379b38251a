"""The mesh's receive loops, its hang detector and its shutdown under hostile or unlucky
conditions (issue 13, findings 3, 7 and 9), with real processes against the emulator:

- foreign frames (wrong frame count, garbage, unknown types, oversize) sent by a raw ZeroMQ
  socket to the ingest, store and control endpoints are refused and logged, and the mesh stores
  every liquidation the emulator pushed;
- a flood at ingest does not get the validator killed as hung, and its event loop keeps turning;
- a stop with one actor SIGSTOPped and another dead completes in order, within 10 s, exit 0;
- an actor whose essential task dies exits with code 1 (so it is restarted), never reports on;
- a frozen actor is still killed as hung; a stuck event loop shows in the reports, which go on.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import msgspec
import pytest
import zmq

from actors.runtime import make_bus_dir
from actors.topology import load_topology
from messages.codec import encode
from messages.control import ActorStats, Reply, Stop, control_decoder
from messages.envelope import Ack
from tests.harness import ROOT, mesh_log, wait_for, write_topology
from tests.integration.faults import LoadedMesh, alive, compare, read_liquidations, settle_and_stop

LOAD_PER_SYMBOL = 300  # Bybit liquidations per symbol per second


@pytest.fixture
def mesh(tmp_path):
    m = LoadedMesh(tmp_path)
    yield m
    m.kill()


def _dealer(ctx: zmq.Context, endpoint: str, identity: bytes) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(endpoint)
    return sock


def _lines(log: str, actor: str, text: str) -> list[str]:
    """Log lines of one actor (the second column of every line) that contain `text`."""
    return [line for line in log.splitlines() if re.search(rf"\|\s*{re.escape(actor)}\s+\|", line) and text in line]


def _assert_nothing_lost(mesh: LoadedMesh) -> None:
    signal_ns, _ = settle_and_stop(mesh, signal.SIGINT)
    stored, truth = read_liquidations(mesh.catalog), mesh.truth()
    for venue in ("BYBIT", "BINANCE"):
        result = compare(truth, stored, venue, signal_ns)
        assert result["missing"] == [] and result["missing_in_gaps"] == [], \
            f"{venue}: {len(result['missing'])} + {len(result['missing_in_gaps'])} of {result['expected']} missing"
        assert result["duplicates"] == [] and result["gaps"] == []
    assert compare(truth, stored, "BYBIT", signal_ns)["expected"] > 2_000, "not under load"


def test_foreign_frames_at_ingest_store_and_control_are_refused_logged_and_nothing_is_lost(mesh):
    mesh.start()
    mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
    topo, _ = load_topology(mesh.topology)
    ctx = zmq.Context()
    wrong_kind = {"ingest": encode(Ack(source="collector.bybit", epoch=1, seq=10**9)),  # acks go the other way
                  "store": encode(Stop(name="writer")),
                  "control": encode(Reply(ok=True, message="a reply goes to bin/ctl, not to the coordinator"))}
    # Identities: the history CLI's form passes the validator's peer check (so garbage reaches its decoder);
    # the writer takes only the validator, the coordinator anything.
    identity = f"cli.history.bybit.{os.getpid()}".encode()
    sockets = []
    try:
        for where in ("ingest", "store", "control"):
            sock = _dealer(ctx, topo.endpoint(where), identity)
            big = _dealer(ctx, topo.endpoint(where), b"big." + identity)
            sockets += [sock, big]
            time.sleep(0.3)  # connected
            sock.send_multipart([b"first frame", b"second frame"])  # three frames at the ROUTER
            sock.send_multipart([b"a", b"b", b"c", b"d"])
            for _ in range(300):  # a flood of garbage: refused, and logged a few times, not 300
                sock.send(b"\xc1 not msgpack \x00\xff")
            sock.send(msgspec.msgpack.encode({"type": "no such type", "seq": 1}))
            sock.send(wrong_kind[where])
            sock.send(b"")
            big.send(b"\x00" * (2 << 20))  # 2 MiB: over the 1 MiB limit
        time.sleep(3.0)  # storage goes on under load after all that
        status = mesh.status()
        assert all(a["state"] == "running" and a["restarts"] == 0 for a in status), status
        log = lambda: mesh_log(mesh.topology)  # noqa: E731
        for actor, where in (("validator", "ingest"), ("writer", "store"), ("coordinator", "control")):
            # The oversize sender is still connected (it reconnects): this disconnect is the refusal.
            wait_for(lambda: _lines(log(), actor, f"{where}: a peer disconnected"), 15, 0.3,
                     f"{actor} to log the dropped oversize sender on {where}")
    finally:
        for sock in sockets:
            sock.close()
        ctx.term()
    _assert_nothing_lost(mesh)
    text = log()
    for actor, where in (("validator", "ingest"), ("writer", "store"), ("coordinator", "control")):
        assert _lines(text, actor, f"{where}: message of 2 frames from {identity!r} refused (a message here has 1)")
    assert _lines(text, "validator", "ingest: undecodable message from")
    assert _lines(text, "validator", "ingest: unexpected Ack from")
    assert _lines(text, "writer", f"store: message from unknown peer {identity!r} refused")
    assert _lines(text, "coordinator", "control: refused an undecodable message from")
    assert _lines(text, "coordinator", "control: unexpected Reply from")
    for actor, where in (("validator", "ingest"), ("writer", "store"), ("coordinator", "control")):
        refusals = [line for line in _lines(text, actor, f"{where}: ") if "WARNING" in line]
        assert len(refusals) < 30, f"{actor} logged {len(refusals)} refusals: not rate-limited"


FLOOD_S = 15.0  # longer than the coordinator's HANG_AFTER_S (10 s)


def test_a_flood_at_ingest_keeps_the_validator_turning_and_does_not_get_it_killed_as_hung(mesh):
    mesh.start()
    mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
    topo, _ = load_topology(mesh.topology)
    validator = mesh.actor("validator")["pid"]
    ctx = zmq.Context()
    sent = [0]
    done = threading.Event()

    def flood() -> None:  # as fast as the validator takes them (a blocking send waits at the high-water mark)
        sock = _dealer(ctx, topo.endpoint("ingest"), b"flooder")
        try:
            while not done.is_set():
                sock.send(b"\xc1 not a message")
                sent[0] += 1
        finally:
            sock.close()

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    lags = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < FLOOD_S:
            v = mesh.actor("validator")
            assert v["pid"] == validator and v["restarts"] == 0, f"the validator was killed during the flood: {v}"
            lags.append(v.get("loop_lag_s", 0.0))
            time.sleep(0.5)
    finally:
        done.set()
        flooder.join(10)
        ctx.term()
    print(f"flood: {sent[0]:,} messages in {FLOOD_S:.0f}s; validator loop lag max {max(lags):.2f}s over {len(lags)} samples")
    assert sent[0] > 20_000, "not a flood"
    assert "hung, killing it" not in mesh_log(mesh.topology)
    assert max(lags) < 2.0, f"the validator's event loop stalled for {max(lags):.1f}s under the flood"
    _assert_nothing_lost(mesh)


def test_stop_with_one_actor_sigstopped_and_one_dead_completes_in_order_within_10s(tmp_path):
    # A long backoff: the killed collector is still dead when the mesh is stopped. The stopped one is
    # the first of its stage, so the others have long exited when its deadline passes.
    mesh = LoadedMesh(tmp_path, restart={"backoff_initial_s": 60, "backoff_max_s": 60, "max_restarts": 10, "window_s": 60})
    frozen = None
    try:
        mesh.start()
        mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
        time.sleep(1.0)
        pids = {a["name"]: a["pid"] for a in mesh.status()}
        frozen = pids["collector.binance"]
        os.kill(frozen, signal.SIGSTOP)  # stopped: SIGTERM stays pending
        os.kill(pids["collector.hyperliquid"], signal.SIGKILL)
        wait_for(lambda: mesh.actor("collector.hyperliquid")["state"] == "backoff", 10, 0.1, "the collector to be down")
        started = time.monotonic()
        mesh.proc.send_signal(signal.SIGTERM)
        mesh.proc.wait(30)
        exit_s = time.monotonic() - started
    finally:
        if frozen and alive(frozen):
            os.kill(frozen, signal.SIGKILL)
        mesh.kill()
    log = mesh_log(mesh.topology)
    print(f"stopped in {exit_s:.1f}s")
    assert mesh.proc.returncode == 0 and exit_s <= 10.0, f"exit code {mesh.proc.returncode} after {exit_s:.1f}s"
    assert _lines(log, "coordinator", "collector.binance did not stop by its deadline")
    stopped = re.findall(r"\| ([\w.]+) stopped \(exit code (-?\d+)\)", log)  # in the order they were stopped
    assert [name for name, _ in stopped] == ["collector.binance", "collector.bybit", "validator", "writer", "emulator"], stopped
    assert dict(stopped) == {"collector.binance": "-9", "collector.bybit": "0", "validator": "0", "writer": "0",
                             "emulator": "0"}, "only the stopped collector is killed"
    assert not [p for p in pids.values() if p and alive(p)], "an actor outlived the mesh"


_ACTOR_WITH_A_FAILING_TASK = r"""
import asyncio, sys
from actors.runtime import essential, run_actor

async def actor(topo, stop, stats):
    async def receive():
        await asyncio.sleep(0.3)
        raise ValueError("the receive loop broke")
    essential(receive(), "receiving")
    if sys.argv[2] == "clean":
        await stop.wait()
    else:
        await asyncio.sleep(60)  # a stop that never finishes

run_actor("probe", sys.argv[1], None, actor)
"""


@pytest.mark.parametrize("stop", ["clean", "stuck"])
def test_an_actor_whose_essential_task_dies_exits_with_code_1(tmp_path, stop):
    topology = write_topology(tmp_path)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _ACTOR_WITH_A_FAILING_TASK, str(topology), stop], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-2000:]
    assert "receiving failed: stopping this actor with exit code 1" in done.stderr
    assert "ValueError: the receive loop broke" in done.stderr
    assert took < 15.0
    if stop == "stuck":
        assert "exiting now" in done.stderr


def test_a_frozen_validator_is_still_killed_as_hung_and_restarted_without_loss(mesh):
    """Reports come from a thread now: a process that is stopped as a whole still goes silent."""
    mesh.start()
    mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
    frozen = mesh.actor("validator")["pid"]
    os.kill(frozen, signal.SIGSTOP)
    try:
        wait_for(lambda: (a := mesh.actor("validator"))["pid"] not in (None, frozen) and a["state"] == "running", 30, 0.5,
                 "the frozen validator to be killed and restarted")
    finally:
        if alive(frozen):
            os.kill(frozen, signal.SIGKILL)
    assert _lines(mesh_log(mesh.topology), "coordinator", f"validator (pid {frozen}) sent no report for")
    _assert_nothing_lost(mesh)


_ACTOR_WITH_A_STUCK_LOOP = r"""
import asyncio, sys, time
from actors.runtime import run_actor

async def actor(topo, stop, stats):
    await asyncio.sleep(1.5)
    stats.events_in = 7
    time.sleep(4.0)  # the event loop is stuck: no await, no progress
    await stop.wait()

run_actor("probe", sys.argv[1], None, actor)
"""


def test_reports_go_on_while_the_event_loop_is_stuck_and_show_its_lag(tmp_path):
    """What lets the coordinator tell busy from hung: reports keep coming from the reporter thread,
    with the event loop's lag, while the counters say whether anything moves."""
    topology = write_topology(tmp_path)
    topo, _ = load_topology(topology)
    make_bus_dir(topo.mesh)
    ctx = zmq.Context()
    control = ctx.socket(zmq.ROUTER)
    control.setsockopt(zmq.LINGER, 0)
    control.bind(topo.endpoint("control"))
    proc = subprocess.Popen([sys.executable, "-c", _ACTOR_WITH_A_STUCK_LOOP, str(topology)], cwd=ROOT,
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    reports = []
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and not (reports and reports[-1][1].events_in == 7
                                                   and any(r.loop_lag_s > 3 for _, r in reports) and reports[-1][1].loop_lag_s < 0.5):
            if control.poll(500):
                _, data = control.recv_multipart()
                report = control_decoder.decode(data)
                assert isinstance(report, ActorStats) and report.name == "probe"
                reports.append((time.monotonic(), report))
    finally:
        proc.terminate()
        proc.wait(10)
        control.close()
        ctx.term()
    stuck = [(t, r) for t, r in reports if r.loop_lag_s > 1.0]
    assert stuck, f"no report showed the stuck loop: {[r.loop_lag_s for _, r in reports]}"
    assert max(r.loop_lag_s for _, r in stuck) > 3.0
    assert len({r.events_in for _, r in stuck}) == 1, "the counters did not move while the loop was stuck"
    gaps = [b - a for (a, _), (b, _) in zip(stuck, stuck[1:])]
    assert len(stuck) >= 3 and max(gaps) < 2.0, f"reports stopped while the loop was stuck: {gaps}"
    assert reports[-1][1].loop_lag_s < 0.5, "the loop turns again"
