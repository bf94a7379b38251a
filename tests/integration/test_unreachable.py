"""A mesh that collects nothing must not look healthy (issue 15, item 8).

Every venue's URL points at a closed loopback port (as without a network): `bin/ctl status` shows
each collector `unreachable` with since when and the connection error (also in `--json`), the
coordinator's log says that no venue can be reached and suggests `--sandbox`, and a venue that
comes up (the emulator, started on that port) is collected from and shows `running` again.
`bin/tap` without a mesh and `derivs oi` without any venue say so, through the real commands.
"""

import json
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest

from tests.harness import ROOT, free_port_url, mesh_log, start_mesh, stop_mesh, wait_for, write_topology

COLLECTORS = ("collector.binance", "collector.bybit", "collector.hyperliquid")


@pytest.fixture(scope="module")
def dead_venues(tmp_path_factory):
    """An emulator file whose three venue URLs are loopback ports nobody listens on."""
    tmp = tmp_path_factory.mktemp("unreachable")
    urls = {venue: free_port_url() for venue in ("binance", "bybit", "hyperliquid")}
    emulator_file = tmp / "emulator-urls.json"
    emulator_file.write_text(json.dumps(urls))
    return tmp, emulator_file, urls


def ctl(topology, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "ctl"), "--topology", str(topology), *args], capture_output=True,
                          text=True, timeout=30, cwd=ROOT)


def actors(topology) -> dict[str, dict]:
    """`bin/ctl status --json` by actor name; empty while the coordinator does not answer yet."""
    done = ctl(topology, "status", "--json")
    return {a["name"]: a for a in json.loads(done.stdout)} if done.returncode == 0 else {}


def states(status: dict[str, dict]) -> dict[str, str]:
    return {name: status.get(name, {}).get("state") for name in COLLECTORS}


def test_collectors_that_reach_no_venue_show_unreachable_and_recover_when_it_answers(dead_venues):
    tmp, emulator_file, urls = dead_venues
    (tmp / "mesh").mkdir()
    topology = write_topology(tmp / "mesh", sandbox={"start_emulator": False, "emulator_file": str(emulator_file)})
    started_ns = time.time_ns()
    proc = start_mesh(topology, "--sandbox")
    emulator = None
    try:
        status = wait_for(lambda: (s := actors(topology)) and set(states(s).values()) == {"unreachable"} and s,
                          60, 0.5, "every collector unreachable in bin/ctl status --json")
        for name in COLLECTORS:
            a, url = status[name], urls[name.split(".")[1]]
            assert started_ns < a["unreachable_since_ns"] <= time.time_ns()
            assert url in a["last_error"] and "Cannot connect" in a["last_error"], a["last_error"]
            assert a["events_in"] == 0 and a["restarts"] == 0 and a["pid"]  # alive, retrying, not crash-looping
        assert status["writer"]["state"] == status["validator"]["state"] == "running"

        table = ctl(topology, "status")
        assert table.returncode == 0, table.stderr
        rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:] if line.split()[0] in status}
        assert {name: rows[name][1] for name in COLLECTORS} == dict.fromkeys(COLLECTORS, "unreachable")
        assert rows["writer"][1] == "running"
        for name in COLLECTORS:
            (line,) = [x for x in table.stdout.splitlines() if x.startswith(f"{name}: venue unreachable since ")]
            assert urls[name.split(".")[1]] in line

        said = wait_for(lambda: [x for x in mesh_log(topology).splitlines() if "no venue can be reached" in x], 20, 0.2,
                        "the coordinator saying that no venue can be reached")
        assert len(said) == 1 and all(name in said[0] for name in COLLECTORS) and "--sandbox" in said[0], said

        # Bybit comes up on its port: its collector collects and is running again; the others stay unreachable
        port = urlparse(urls["bybit"]).port
        emulator = subprocess.Popen([sys.executable, "-m", "emulator", "--venues", "bybit", "--port-bybit", str(port),
                                     "--ready-file", str(tmp / "bybit-ready.json")], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=open(tmp / "emulator.stderr", "wb"))
        wait_for((tmp / "bybit-ready.json").exists, 20, 0.05, "the Bybit emulator")
        status = wait_for(lambda: (s := actors(topology)) and s["collector.bybit"]["events_in"] > 0 and s, 90, 0.5,
                          "collector.bybit collecting once Bybit answers")
        assert status["collector.bybit"]["state"] == "running" and status["collector.bybit"]["last_error"] == ""
        assert status["collector.bybit"]["unreachable_since_ns"] == 0
        assert status["collector.binance"]["state"] == status["collector.hyperliquid"]["state"] == "unreachable"
        assert stop_mesh(proc, signal.SIGTERM) <= 10.0
    finally:
        if proc.poll() is None:
            proc.kill()
        if emulator is not None:
            emulator.terminate()
            emulator.wait(10)
    log = mesh_log(topology)
    assert proc.returncode == 0, log[-3000:]
    assert "venue reachable again" in log and "collector.bybit" in log


def test_tap_without_a_running_mesh_says_so_within_seconds(tmp_path):
    topology = write_topology(tmp_path)
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "bin" / "tap"), str(topology)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    took = time.monotonic() - started
    assert done.returncode == 1 and done.stdout == ""
    assert "nothing publishes on ipc://" in done.stderr and "is the mesh running?" in done.stderr, done.stderr
    print(f"bin/tap without a mesh exited after {took:.1f} s")
    assert took < 15  # 3 s of waiting for a connection, plus a Python start on a loaded machine


def test_derivs_oi_with_no_venue_reachable_suggests_the_sandbox(dead_venues):
    _, emulator_file, _ = dead_venues
    done = subprocess.run([str(ROOT / "bin" / "derivs"), "oi", "BTC", "--emulator", str(emulator_file)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 1 and done.stdout == ""
    for venue in ("BINANCE", "BYBIT", "HYPERLIQUID"):
        assert f"error: {venue}: venue unreachable" in done.stderr
    assert f"hint: no venue answers at the URLs of {emulator_file}" in done.stderr and "`--sandbox`" in done.stderr
