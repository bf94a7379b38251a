"""One venue down (its emulator port closed): the mesh and the CLI keep serving the other two.
Plus the CLI's output and its errors for unknown symbols and bad topology files."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.harness import ROOT, free_port_url, mesh_log, read_catalog, start_emulator, start_mesh, stop_mesh, wait_for, write_topology


@pytest.fixture(scope="module")
def bybit_down(tmp_path_factory):
    """An emulator serving Binance and Hyperliquid; Bybit's URL points at a closed port."""
    tmp = tmp_path_factory.mktemp("down")
    proc, urls, truth = start_emulator(tmp, "binance,hyperliquid")
    urls["bybit"] = free_port_url()
    emulator_file = tmp / "emulator-urls.json"
    emulator_file.write_text(json.dumps(urls))
    yield tmp, emulator_file, truth
    proc.terminate()
    proc.wait(5)


def derivs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_mesh_keeps_collecting_the_other_venues_while_one_is_down(bybit_down):
    tmp, emulator_file, _ = bybit_down
    (tmp / "mesh").mkdir()
    topology = write_topology(tmp / "mesh", sandbox={"start_emulator": False, "emulator_file": str(emulator_file)})
    proc = start_mesh(topology, "--sandbox")
    try:
        catalog = topology.parent / "catalog" / "data" / "custom_open_interest"
        wait_for(lambda: catalog.exists() and {p.name for p in catalog.iterdir()} >= {"BTCUSDT-PERP.BINANCE", "BTC-USD-PERP.HYPERLIQUID"}, 30, what="rows from the two live venues")
        time.sleep(4)
        assert proc.poll() is None, "the mesh must keep running"
        assert stop_mesh(proc, signal.SIGTERM) <= 10.0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = mesh_log(topology)
    assert proc.returncode == 0, log[-3000:]
    rows = read_catalog(topology.parent / "catalog")
    venues = {r[0].rsplit(".", 1)[1] for r in rows["open_interest"]}
    assert venues == {"BINANCE", "HYPERLIQUID"}
    # the dead venue is named, and retried with growing delays, without crashing its collector
    retries = [line for line in log.splitlines() if "collector.bybit" in line and "load_markets failed" in line]
    assert len(retries) >= 2 and "retry 1 in" in retries[0] and "retry 2 in" in retries[1]
    assert "Connect" in retries[0] or "NetworkError" in retries[0] or "ExchangeNotAvailable" in retries[0]
    assert "collector.bybit exited" not in log


def test_cli_prints_the_live_venues_and_a_clear_error_for_the_dead_one(bybit_down):
    _, emulator_file, truth = bybit_down
    done = derivs("oi", "BTC", "ETH", "--emulator", str(emulator_file))
    assert done.returncode == 1
    for iid in ("BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE", "BTC-USD-PERP.HYPERLIQUID", "ETH-USD-PERP.HYPERLIQUID"):
        assert iid in done.stdout
    assert "BYBIT" not in done.stdout
    assert "error: BYBIT: venue unreachable" in done.stderr


def test_cli_json_values_equal_what_the_venue_served(bybit_down):
    _, emulator_file, truth = bybit_down
    done = derivs("oi", "BTCUSDT-PERP", "-v", "binance", "--json", "--emulator", str(emulator_file))
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]  # JSON lines
    assert row["kind"] == "open_interest"
    served = [json.loads(line) for line in truth.read_text().splitlines()]
    t = next(r for r in served if r["kind"] == "open_interest" and r["raw_symbol"] == "BTCUSDT" and r["ts_ms"] * 1_000_000 == row["ts_event"])
    assert row["open_interest"] == t["open_interest"] and row["instrument_id"] == "BTCUSDT-PERP.BINANCE"
    assert row["open_interest_value"] > 0


def test_cli_funding_shows_rate_next_time_and_prediction(bybit_down):
    _, emulator_file, truth = bybit_down
    done = derivs("funding", "BTC", "-v", "hyperliquid", "-v", "binance", "--json", "--emulator", str(emulator_file))
    assert done.returncode == 0, done.stderr
    rows = {r["instrument_id"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert {r["kind"] for r in rows.values()} == {"funding_rate"}
    assert rows["BTC-USD-PERP.HYPERLIQUID"]["predicted_rate"] is not None and rows["BTC-USD-PERP.HYPERLIQUID"]["interval_minutes"] == 60
    assert rows["BTCUSDT-PERP.BINANCE"]["predicted_rate"] is None and rows["BTCUSDT-PERP.BINANCE"]["next_funding_ns"] > time.time_ns()
    # every rate also in common units: per 8 hours and per year (simple), so 1 h and 8 h venues compare
    for r in rows.values():
        periods_a_year, per_8h = 365 * 24 * 60 / r["interval_minutes"], 480 / r["interval_minutes"]
        assert r["rate_annualized"] == pytest.approx(r["rate"] * periods_a_year, rel=1e-12)
        assert r["rate_8h"] == pytest.approx(r["rate"] * per_8h, rel=1e-12)
    hl, binance = rows["BTC-USD-PERP.HYPERLIQUID"], rows["BTCUSDT-PERP.BINANCE"]
    assert hl["rate_8h"] == pytest.approx(hl["rate"] * 8) and binance["rate_8h"] == binance["rate"]
    assert hl["predicted_rate_8h"] == pytest.approx(hl["predicted_rate"] * 8)
    assert binance["predicted_rate_annualized"] is None and binance["predicted_rate_8h"] is None
    asked_ns = time.time_ns()
    table = derivs("funding", "BTC", "-v", "hyperliquid", "--emulator", str(emulator_file))
    header, _, line = table.stdout.splitlines()
    assert header.split()[:7] == ["venue", "instrument", "rate", "interval", "per", "8h", "annualized"]
    served = [json.loads(x) for x in truth.read_text().splitlines()]
    t = max((r for r in served if r["venue"] == "HYPERLIQUID" and r["raw_symbol"] == "BTC" and r["kind"] == "funding_rate"
             and r["endpoint"] == "metaAndAssetCtxs" and r["served_ns"] >= asked_ns), key=lambda r: r["served_ns"])
    # what the venue served, hourly, then the same x 8 and x 8,760 (percent)
    assert line.split()[:6] == ["HYPERLIQUID", "BTC-USD-PERP.HYPERLIQUID", f"{t['rate'] * 100:+.4f}%", "1h",
                                f"{t['rate'] * 8 * 100:+.4f}%", f"{t['rate'] * 8760 * 100:+.2f}%"]


def test_cli_unknown_symbol_names_it_and_suggests_close_ones(bybit_down):
    _, emulator_file, _ = bybit_down
    done = derivs("oi", "BTCUSDX", "ETH", "-v", "binance", "--emulator", str(emulator_file))
    assert done.returncode == 1
    assert "ETHUSDT-PERP.BINANCE" in done.stdout  # the good symbol is still served
    assert "unknown symbol 'BTCUSDX' on BINANCE" in done.stderr and "closest listed: BTCUSDT" in done.stderr


@pytest.mark.parametrize(
    "yaml, expected",
    [
        ("venues: [{venue: kraken, symbols: [BTC]}]", "venues[0].venue: Invalid enum value 'kraken'"),
        ("venues: [{venue: binance, symbols: [BTC], funding_interval_s: soon}]", "venues[0].funding_interval_s: Expected `float`"),
        ("catalog: x", "missing required field `venues`"),
    ],
)
def test_launch_refuses_a_bad_topology_with_a_clear_error(tmp_path, yaml, expected):
    path = tmp_path / "topology.yaml"
    path.write_text(yaml)
    done = subprocess.run([sys.executable, "-m", "actors.coordinator", "--sandbox", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert expected in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr
