"""A symbol the venue does not list is named, skipped, and looked up again rarely: once the venue
lists it, the running collector collects it (real mesh, emulator delisting on demand)."""

import signal
import time
import urllib.request

from tests.harness import mesh_log, read_catalog, start_emulator, start_mesh, stop_mesh, wait_for, write_topology


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).read()


def test_an_unlisted_symbol_is_skipped_then_collected_once_listed(tmp_path):
    emulator, urls, _ = start_emulator(tmp_path, venues="bybit")
    try:
        _post(urls["bybit"] + "/_emulator/delist?symbol=ETHUSDT")
        (tmp_path / "mesh").mkdir()
        topology = write_topology(tmp_path / "mesh", venues={"bybit": ["BTC/USDT:USDT", "ETH/USDT:USDT"]},
                                  sandbox={"start_emulator": False, "emulator_file": str(tmp_path / "emulator.json")})
        text = topology.read_text().replace("venue: bybit", "venue: bybit\n  unknown_symbol_retry_s: 2")
        topology.write_text(text)
        proc = start_mesh(topology, "--sandbox")
        try:
            wait_for(lambda: "unknown symbol 'ETH/USDT:USDT' on BYBIT" in mesh_log(topology), 30, what="the skip")
            assert "skipped, looked up again every 2s" in mesh_log(topology)
            time.sleep(3)
            assert "is listed now" not in mesh_log(topology)  # still delisted: still skipped
            _post(urls["bybit"] + "/_emulator/delist?symbol=ETHUSDT&relist=1")
            wait_for(lambda: "ETH/USDT:USDT is listed now: collecting ETHUSDT-LINEAR.BYBIT" in mesh_log(topology), 15,
                     what="the relisted symbol")
            time.sleep(3)
        finally:
            stop_mesh(proc, signal.SIGINT)
    finally:
        emulator.terminate()
        emulator.wait(10)
    catalog = read_catalog(tmp_path / "mesh" / "catalog")
    ids = {row[0] for row in catalog["open_interest"]}
    assert ids == {"BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT"}
    assert {"BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT"} <= set(catalog["instruments"])
