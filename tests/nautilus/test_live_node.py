"""The live data client in a real TradingNode (examples/live_node.py, its own process) on the real
sandbox mesh (coordinator, emulator, ccxt collectors, validator, writer): started before the mesh,
it says so once and connects when the mesh comes up; every type arrives; each live object equals
the catalog's row of the same event (read back by ParquetDataCatalog); the mesh is restarted
mid-run, then the validator alone, and the feed goes on; a node started later warms up from the
catalog.

One mesh run (module fixture, ~1 minute) in phases, each feeding one test.
"""

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.harness import ROOT, start_mesh, stop_mesh, wait_for
from tests.nautilus.live_harness import NODE, Node, catalog_rows, key, live_topology, post

LIVE_TYPES = ("OpenInterest", "FundingRateUpdate", "FundingRateInfo", "Liquidation")
INSTRUMENTS = {"BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT",
               "BTC-USD-PERP.HYPERLIQUID", "ETH-USD-PERP.HYPERLIQUID"}
NO_BUS = "nothing publishes on"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _mesh_up(tmp: Path, subscriptions: int) -> dict[str, str]:
    """Wait for the sandbox's emulator and both liquidation streams; start liquidations (5/s a symbol)."""
    ready = tmp / "run" / "emulator.json"
    urls = json.loads(wait_for(lambda: ready.exists() and ready.read_text(), 120, 0.1, "the emulator"))
    for venue in ("binance", "bybit"):
        log = tmp / "run" / "logs" / f"collector.{venue}.log"
        wait_for(lambda: _read(log).count("liquidations: subscribed") >= subscriptions, 120, 0.1, f"{venue} liquidations")
        post(urls[venue] + "/_emulator/liquidation_rate?per_second=5")
    return urls


def _quiet(node: Node, seconds: float = 2.0):
    """A condition: the node logged no new liquidation for `seconds`."""
    seen = {"count": -1, "since": time.monotonic()}

    def check() -> bool:
        count = node.log().count("Liquidation(")
        if count != seen["count"]:
            seen.update(count=count, since=time.monotonic())
        return time.monotonic() - seen["since"] >= seconds

    return check


def _after_last_reconnect(text: str) -> str:
    """The node's log after it reconnected following its last "lost" line ("" if it has not yet): what
    arrived there came over the new bus (a time mark taken around `bin/ctl restart` could not say so)."""
    lost = text.rfind("lost the mesh's live bus")
    back = text.find("connected to the mesh's live bus", lost) if lost >= 0 else -1
    return text[back:] if back >= 0 else ""


def _all_in(text: str, *needles: str) -> bool:
    return all(n in text for n in needles)


def _every_instrument_logged(text: str) -> bool:
    """The node logged (repr) OI, funding and, where the venue streams them, liquidations of each instrument."""
    wanted = [f"{t}(instrument_id=InstrumentId('{iid}')" for iid in INSTRUMENTS for t in ("OpenInterest", "FundingRateInfo")]
    wanted += [f"FundingRateUpdate(instrument_id={iid}," for iid in INSTRUMENTS]
    wanted += [f"Liquidation(instrument_id=InstrumentId('{iid}')" for iid in INSTRUMENTS if "HYPERLIQUID" not in iid]
    return _all_in(text, *wanted)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("livenode")
    topology = live_topology(tmp)
    node = Node(topology, "node", "--seconds", "600")
    meshes = []
    out: dict = {"tmp": tmp, "topology": topology}
    try:
        # 1. no mesh yet: the node says so, keeps trying; then the mesh comes up
        wait_for(lambda: NO_BUS in node.log(), 60, 0.1, "the node's no-mesh line")
        meshes.append(start_mesh(topology, "--sandbox"))
        urls = _mesh_up(tmp, 1)
        wait_for(lambda: _every_instrument_logged(node.log()), 120, 0.2, "every type of every instrument at the node")
        # 2. Bybit's sockets dropped: the collector records a gap, the bus publishes it
        post(urls["bybit"] + "/_emulator/drop?refuse_seconds=1")
        wait_for(lambda: "Gap(" in node.log(), 30, 0.2, "a gap at the node")
        # 3. the whole mesh restarted (validator and its bus included)
        mark = len(node.log())
        stop_mesh(meshes.pop())
        out["restart_ns"] = time.time_ns()
        (tmp / "run" / "emulator.json").unlink(missing_ok=True)
        meshes.append(start_mesh(topology, "--sandbox"))
        urls = _mesh_up(tmp, 2)
        # the feed goes on, with the restarted collectors' downtime gaps (one per liquidation stream; one
        # may correct the drop's gap: same start, new end, the row the catalog keeps)
        wait_for(lambda: _all_in(node.log()[mark:], "connected to the mesh's live bus") and _every_instrument_logged(
                     node.log()[mark:]) and node.log()[mark:].count("collector was not running") >= 4,
                 120, 0.2, "the feed after the restart")
        # 4. no new liquidations; a node started now gets the last one of each instrument at once (the
        # bus's last-value replay: nothing else could send it), beside the current OI and funding
        for venue in ("binance", "bybit"):
            post(urls[venue] + "/_emulator/liquidation_rate?per_second=0")
        wait_for(_quiet(node), 30, 0.1, "no new liquidation at the node for 2 s")
        out["late_start_ns"] = time.time_ns()
        late = Node(topology, "late", "--seconds", "300")
        try:
            wait_for(lambda: late.log().count("Liquidation(") >= 4, 60, 0.2, "the late node's replayed liquidations")
            out["late_counts"] = late.stop()
        finally:
            late.kill()
        out["late_records"] = late.records()
        for venue in ("binance", "bybit"):
            post(urls[venue] + "/_emulator/liquidation_rate?per_second=5")
        # 5. the validator alone restarted (bin/ctl): the bus goes away and comes back
        mark = len(node.log())
        out["ctl_ns"] = time.time_ns()
        ctl = subprocess.run([sys.executable, "-m", "actors.ctl", "--topology", str(topology), "restart", "validator"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        wait_for(lambda: _all_in(_after_last_reconnect(node.log()[mark:]), "Liquidation(", "OpenInterest("), 60, 0.2,
                 "the feed after the validator's restart")
        out["counts"] = node.stop()
        stop_mesh(meshes.pop())
        # 6. a node started with the mesh down: instruments and warm-up history from the catalog
        warm = Node(topology, "warm", "--seconds", "300", "--warmup-hours", "2")
        try:
            wait_for(lambda: warm.log().count("from the catalog (") >= 2 * len(INSTRUMENTS), 60, 0.2, "the warm-up answers")
            out["warm_counts"] = warm.stop()
        finally:
            warm.kill()
        out["warm_records"], out["warm_log"] = warm.records(), warm.log()
    finally:
        node.kill()
        for mesh in meshes:
            mesh.kill()
    out["records"], out["log"] = node.records(), node.log()
    out["catalog"] = catalog_rows(tmp / "catalog")
    return out


def test_node_started_before_the_mesh_says_so_once_and_connects(run):
    log = run["log"]
    assert log.count(NO_BUS) == 1, log[-3000:]
    assert log.index(NO_BUS) < log.index("connected to the mesh's live bus")
    # the catalog was empty at the start: the definitions came from the bus (the collectors publish them)
    assert "0 instruments from the catalog" in log
    assert run["counts"]["instruments"] == len(INSTRUMENTS)


def test_every_type_arrives_for_every_instrument(run):
    got = {(r["type"], r["fields"]["instrument_id"]) for r in run["records"]}
    for iid in INSTRUMENTS:
        for t in ("OpenInterest", "FundingRateUpdate", "FundingRateInfo"):
            assert (t, iid) in got, (t, iid)
    assert {iid for t, iid in got if t == "Liquidation"} == {i for i in INSTRUMENTS if "HYPERLIQUID" not in i}
    assert any(t == "Gap" and "BYBIT" in iid for t, iid in got)
    counts = run["counts"]
    assert all(counts[t] == sum(r["type"] == t for r in run["records"]) for t in (*LIVE_TYPES, "Gap"))


def test_live_objects_equal_the_catalog_rows_of_the_same_events(run):
    stored = {key(r) for r in run["catalog"]}
    stored_at = {(r["type"], r["fields"]["instrument_id"], r["fields"]["ts_init"]): key(r) for r in run["catalog"]}
    live = Counter(key(r) for r in run["records"])
    assert max(live.values()) == 1, [k for k, n in live.items() if n > 1][:3]  # nothing twice (restart re-sends included)
    # a row corrected later (a gap extended after the restart: same natural key, new end) replaces
    # the first one in the catalog, live as in storage: the newest live object per key is the row
    newest = {}
    for r in run["records"]:
        newest[(r["type"], r["fields"]["instrument_id"], r["fields"]["ts_init"])] = r
    differ = [(key(r), stored_at[k]) for k, r in newest.items() if k in stored_at and key(r) != stored_at[k]]
    assert not differ, differ[:3]
    # everything received well before the validator's restart is stored by now; what was in flight
    # then is kept by the collectors until the writer acknowledges it, possibly after this run
    settled = [key(r) for k, r in newest.items() if r["recv_ns"] < run["ctl_ns"] - 5 * 10**9]
    missing = [k for k in settled if k not in stored]
    assert not missing, missing[:5]
    live_stored = {t: sum(1 for k in settled if json.loads(k)[0] == t) for t in (*LIVE_TYPES, "Gap")}
    assert all(n >= 4 for n in live_stored.values()), live_stored


def test_mesh_restart_keeps_the_feed(run):
    log = run["log"]
    assert "lost the mesh's live bus" in log
    assert log.count("connected to the mesh's live bus") >= 2
    after = {r["type"] for r in run["records"] if r["recv_ns"] > run["restart_ns"]}
    assert {"OpenInterest", "FundingRateUpdate", "FundingRateInfo", "Liquidation"} <= after


def test_a_new_subscriber_gets_the_last_liquidation_at_once(run):
    """Started while no liquidation happens, the late node still gets one per instrument: the last
    one the running node received, from the bus's replay."""
    def last_per_instrument(records):
        last = {}
        for r in records:
            if r["type"] == "Liquidation":
                last[r["fields"]["instrument_id"]] = r["fields"]
        return last

    late = [r for r in run["late_records"] if r["type"] == "Liquidation"]
    assert len(late) == 4, late
    before = [r for r in run["records"] if run["restart_ns"] < r["recv_ns"] < run["late_start_ns"]]  # this bus's
    assert last_per_instrument(late) == last_per_instrument(before)
    assert {"OpenInterest", "FundingRateUpdate", "FundingRateInfo"} <= set(run["late_counts"])


def test_validator_restart_keeps_the_feed(run):
    log = run["log"]
    assert log.count("lost the mesh's live bus") >= 2 and log.count("connected to the mesh's live bus") >= 3
    assert _all_in(_after_last_reconnect(log), "OpenInterest(", "Liquidation("), log[-3000:]


def test_warm_up_history_is_the_catalog_rows(run):
    """A node started on the catalog alone: the definitions from it, and request_data /
    request_funding_rates answered with exactly the stored OI and live funding rows."""
    assert run["warm_counts"]["instruments"] == len(INSTRUMENTS)
    assert "nothing publishes on" in run["warm_log"]
    history = Counter(key(r) for r in run["warm_records"])
    stored = Counter(key(r) for r in run["catalog"] if r["type"] in ("OpenInterest", "FundingRateUpdate"))
    assert history == stored
    assert run["warm_counts"]["history"] == {"FundingRateUpdate": stored_count(run, "FundingRateUpdate"),
                                             "OpenInterest": stored_count(run, "OpenInterest")}


def stored_count(run, t: str) -> int:
    return sum(r["type"] == t for r in run["catalog"])


def test_a_bad_topology_is_one_clear_error(tmp_path):
    """A user's mistake in the topology: the node does not start, the message names the value."""

    bad = live_topology(tmp_path)
    bad.write_text(bad.read_text().replace("venue: bybit", "venue: bybitt"))
    done = subprocess.run([sys.executable, str(NODE), str(bad), "--seconds", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "bybitt" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
