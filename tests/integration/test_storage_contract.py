"""The storage contract under the faults of issue 13 that the older fault tests did not reach:
a collector restarted while the writer is down keeps its backlog, a writer whose WAL lost
acknowledged events neither jams a stream nor loses data silently, and minutes of random
`kill -9` (the coordinator once) leave nothing missing outside a recorded gap and nothing
doubled. Ground truth: the emulator's record of every liquidation it pushed."""

import os
import random
import signal
import struct
import time
from pathlib import Path

import pytest

from messages.codec import decode_message
from messages.envelope import Batch
from tests.harness import mesh_log, start_emulator, wait_for
from tests.integration.faults import LoadedMesh, alive, compare, compare_arrow, read_liquidations, settle_and_stop

LOAD_PER_SYMBOL = 1000  # Bybit liquidations per symbol per second


def test_a_collector_restarted_while_the_writer_is_down_keeps_its_backlog(tmp_path):
    """Issue 13.8: the spool was truncated by the next process (14.9k events lost in a trial)."""
    mesh = LoadedMesh(tmp_path)
    try:
        mesh.start()
        mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
        time.sleep(1.0)
        assert "stopped" in mesh.ctl("stop", "writer").stdout
        wait_for(lambda: mesh.actor("collector.bybit")["queue_depth"] > 3000, 30, 0.2, "a backlog to build up")
        restart_ns = time.time_ns()
        mesh.ctl("restart", "collector.bybit")  # a clean stop: its drain times out, the writer is down
        wait_for(lambda: mesh.actor("collector.bybit")["events_in"] > 0, 60, 0.2, "collector.bybit at work again")
        mesh.ctl("start", "writer")
        signal_ns, _ = settle_and_stop(mesh, signal.SIGINT)
    finally:
        mesh.kill()
    stored = read_liquidations(mesh.catalog)
    bybit = compare(mesh.truth(), stored, "BYBIT", signal_ns)
    log = mesh_log(mesh.topology)

    assert "re-sending" in log and "left unacknowledged" in log
    assert bybit["missing"] == [] and bybit["duplicates"] == [] and bybit["extra"] == []
    # What the collector had received well before it was restarted is stored, not merely "in a gap".
    lost_backlog = [k for k in bybit["missing_in_gaps"] if k[1] < restart_ns - 3e9]
    assert lost_backlog == [], f"{len(lost_backlog)} events of the backlog were lost with the restart"


def _cut_wal(path: Path, keep: float) -> tuple[int, int]:
    """Cut the WAL after `keep` of its frames (at a frame boundary: no torn tail to notice).
    Returns (events kept, events cut): a frame is a batch of events (messages/envelope.py)."""
    data = path.read_bytes()
    ends, counts, pos = [], [], 0
    while pos + 4 <= len(data):
        size = struct.unpack_from("<I", data, pos)[0]
        msg = decode_message(data[pos + 4:pos + 4 + size])
        counts.append(len(msg.events) if isinstance(msg, Batch) else 1)
        pos += 4 + size
        ends.append(pos)
    kept = max(1, int(len(ends) * keep))
    os.truncate(path, ends[kept - 1])
    return sum(counts[:kept]), sum(counts[kept:])


def test_a_wal_that_lost_acknowledged_events_jams_nothing_and_the_loss_is_a_gap(tmp_path):
    """Issue 13.2: the writer waited for seqs the collectors had forgotten; every stream stopped."""
    mesh = LoadedMesh(tmp_path, writer={"flush_interval_s": 60.0},  # the WAL holds everything
                      restart={"backoff_initial_s": 3.0, "backoff_max_s": 3.0, "max_restarts": 10, "window_s": 60})
    wal = mesh.run_dir / "writer" / "wal.log"
    try:
        mesh.start()
        mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
        time.sleep(3.0)
        os.kill(mesh.actor("writer")["pid"], signal.SIGKILL)
        kept, cut = _cut_wal(wal, 0.5)  # the coordinator restarts it in 3 s
        wait_for(lambda: "were acknowledged but are not in the WAL" in mesh_log(mesh.topology), 60, 0.3,
                 "the writer to learn what its WAL lost")
        time.sleep(2.0)
        signal_ns, _ = settle_and_stop(mesh, signal.SIGINT)  # waits until every backlog is acknowledged
    finally:
        mesh.kill()
    stored = read_liquidations(mesh.catalog)
    truth = mesh.truth()
    bybit = compare(truth, stored, "BYBIT", signal_ns)
    reasons = {g[4] for g in stored["gaps"]}

    assert cut > 1000, f"the cut took only {cut} events"
    assert bybit["missing"] == [] and bybit["duplicates"] == [] and bybit["extra"] == []
    assert bybit["missing_in_gaps"], "the cut WAL cost nothing: the test did not test"
    assert any("the writer lost acknowledged events" in r for r in reasons), reasons
    # Nothing stays stuck: the liquidations of the last seconds before the stop are all stored.
    late = [k for k in bybit["missing_in_gaps"] if k[1] > signal_ns - 4e9]
    assert late == []
    binance = compare(truth, stored, "BINANCE", signal_ns)
    assert binance["missing"] == [] and binance["duplicates"] == []


def _chaos(mesh: LoadedMesh, seconds: float, rng: random.Random) -> dict:
    """Random kill -9 of one or two actors every 1-4 s, the coordinator once halfway."""
    victims = ["writer", "validator", "collector.bybit", "collector.binance", "collector.hyperliquid"]
    kills: dict[str, int] = {}
    end = time.monotonic() + seconds
    coordinator_at = time.monotonic() + seconds / 2
    while time.monotonic() < end:
        time.sleep(rng.uniform(1.0, 4.0))
        if coordinator_at and time.monotonic() >= coordinator_at:
            coordinator_at = 0
            pids = [a["pid"] for a in mesh.status() if a["pid"] and a["name"] != "emulator"]
            mesh.proc.kill()
            mesh.proc.wait(10)
            wait_for(lambda: not [p for p in pids if alive(p)], 30, 0.2, "the actors to leave with their coordinator")
            mesh.start()
            mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
            kills["coordinator"] = 1
            continue
        running = {a["name"]: a["pid"] for a in mesh.status() if a["pid"]}
        for name in rng.sample(victims, rng.choice([1, 2])):
            try:
                os.kill(running[name], signal.SIGKILL)
            except (KeyError, ProcessLookupError):  # between two lives: not running now
                continue
            kills[name] = kills.get(name, 0) + 1
    return kills


def _run_chaos(tmp_path: Path, seconds: float, seed: int) -> None:
    emulator, _, truth_path = start_emulator(tmp_path)  # the venue outlives every coordinator
    mesh = LoadedMesh(tmp_path, emulator_file=tmp_path / "emulator.json",
                      restart={"backoff_initial_s": 0.3, "backoff_max_s": 2, "max_restarts": 1000, "window_s": 60})
    mesh.truth_path = truth_path
    try:
        mesh.start()
        mesh.liquidation_rate("bybit", LOAD_PER_SYMBOL)
        kills = _chaos(mesh, seconds, random.Random(seed))
        wait_for(lambda: all(a["state"] == "running" and (a["events_in"] or not a["name"].startswith("collector."))
                             for a in mesh.status()), 90, 0.5, "every actor at work again")
        time.sleep(1.0)
        signal_ns, exit_s = settle_and_stop(mesh, signal.SIGINT)
    finally:
        mesh.kill()
        emulator.terminate()
        emulator.wait(10)
    results = {v: compare_arrow(truth_path, mesh.catalog, v, signal_ns) for v in ("BYBIT", "BINANCE")}
    print(f"chaos {seconds:.0f}s seed {seed}: kills {kills}; exit {exit_s:.1f}s;",
          {v: {k: r[k] for k in ("expected", "stored", "missing_in_gaps", "gaps", "duplicates")} for v, r in results.items()})

    assert sum(kills.values()) >= seconds / 10 and kills.get("coordinator") == 1
    assert mesh.proc.returncode == 0 and exit_s <= 10.0
    for venue, r in results.items():
        assert r["expected"] > 0
        assert r["missing"] == [], f"{venue}: {len(r['missing'])} missing outside any gap, e.g. {r['missing'][:3]}"
        assert r["duplicates"] == 0 and r["extra"] == 0, (venue, r["duplicate_examples"], r["extra_examples"])


def test_chaos_kill9_under_load_loses_nothing_outside_gaps(tmp_path):
    _run_chaos(tmp_path, seconds=40, seed=13)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_chaos_kill9_for_minutes(tmp_path):
    """Opt-in (-m slow): DERIVS_CHAOS_S seconds (default 300) of it."""
    _run_chaos(tmp_path, seconds=float(os.environ.get("DERIVS_CHAOS_S", "300")), seed=int(time.time()))
