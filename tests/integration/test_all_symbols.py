"""`symbols: all` on every venue (real mesh, real ccxt, catalog read by ParquetDataCatalog),
compared with what the emulator lists (`GET /_emulator/universe`) and served (its ground truth):
every listed perpetual gets its definition, open interest and funding; a perpetual listed during
the run (`POST /_emulator/list`) is picked up, one delisted (`POST /_emulator/delist`) stops with
its end recorded; Binance's full universe, with the emulator enforcing its limits, gets no
rate-limit answer.

The default suite runs the listing test on the core universe (six coins a venue); on the full
universes (~1,300 perpetuals) it is opt-in (`-m slow`): the writer's first flush of ~4,000 new
directories alone takes one to two minutes on a 2-core machine (an fsync per file and directory).
The rate-limit test runs the full Binance universe in the default suite: it reads the emulator's
record, not the catalog.
"""

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from emulator.ground_truth import load_ground_truth
from tests.harness import ROOT, mesh_log, start_emulator, start_mesh, stop_mesh, wait_for, write_topology

VENUES = ("binance", "bybit", "hyperliquid")
SUFFIX = {"binance": "-PERP.BINANCE", "bybit": "-LINEAR.BYBIT", "hyperliquid": "-USD-PERP.HYPERLIQUID"}
NEW = {"binance": "ZZNEWUSDT", "bybit": "ZZNEWUSDT", "hyperliquid": "ZZNEW"}
GONE = {"binance": "SOLUSDT", "bybit": "SOLUSDT", "hyperliquid": "SOL"}


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).read()


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def trading(url: str, venue: str) -> set[str]:
    """The instrument ids `symbols: all` must collect: the venue's perpetuals in status trading
    (Bybit: settled in USDT), as the emulator lists them."""
    items = _get(url + "/_emulator/universe")["perpetuals"]
    return {item["symbol"] + SUFFIX[venue] for item in items
            if item["status"] == "trading" and (venue != "bybit" or item["quote"] == "USDT")}


def _topology(tmp: Path, venues: tuple[str, ...], interval_s: float, shutdown_s: float = 120, **sandbox) -> Path:
    """`shutdown_s`: long enough for the writer's last flush of ~1,300 directories (not cut)."""
    topology = write_topology(tmp, venues={v: "all" for v in venues}, oi_s=interval_s, funding_s=interval_s,
                              sandbox={"start_emulator": False, "emulator_file": str(tmp.parent / "emulator.json"), **sandbox},
                              shutdown_timeout_s=shutdown_s)
    topo = yaml.safe_load(topology.read_text())
    for v in topo["venues"]:
        v.update(instruments_interval_s=interval_s, liquidations=v["venue"] != "hyperliquid")
    topology.write_text(yaml.safe_dump(topo))
    return topology


def _dirs(catalog: Path, kind: str) -> set[str]:
    path = catalog / "data" / kind
    return {p.name for p in path.iterdir()} if path.exists() else set()


_READ = r"""
import json, sys
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import OpenInterest, FundingRateInfo, Gap
cat = ParquetDataCatalog(sys.argv[1])
rows = lambda t: [getattr(r, "data", r) for r in cat.query(t)]
print(json.dumps({
  "instruments": sorted(str(i.id) for i in cat.instruments()),
  "oi": [[str(r.instrument_id), r.ts_event, r.open_interest] for r in rows(OpenInterest)],
  "funding": sorted({str(r.instrument_id) for r in rows(FundingRateInfo)}),
  "gaps": [[str(r.instrument_id), r.stream, r.reason, r.ts_event, r.end_ns] for r in rows(Gap)],
}))
"""


def read_catalog(catalog: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _READ, str(catalog)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# full: every step waits for the writer, whose flushes of ~4,000 directories take 1.5-2.5 min each on a loaded 2-core machine
@pytest.mark.parametrize("universe", ["core", pytest.param("full", marks=[pytest.mark.slow, pytest.mark.timeout(1200)])])
def test_symbols_all_collects_every_listed_perpetual_and_follows_listings(tmp_path, universe):
    emulator, urls, truth = start_emulator(tmp_path, "binance,bybit,hyperliquid", 7, universe=universe)
    wait_s = 60 if universe == "core" else 400
    try:
        (tmp_path / "mesh").mkdir()
        topology = _topology(tmp_path / "mesh", VENUES, 2.0)
        catalog = tmp_path / "mesh" / "catalog"
        proc = start_mesh(topology, "--sandbox")
        try:
            before = {v: trading(urls[v], v) for v in VENUES}
            gone = {v: GONE[v].removesuffix("USDT") if v == "hyperliquid" else GONE[v] for v in VENUES}
            gone_ids = {v: gone[v] + SUFFIX[v] for v in VENUES}
            assert all(gone_ids[v] in before[v] and len(before[v]) >= (5 if universe == "core" else 150) for v in VENUES), \
                {v: len(before[v]) for v in VENUES}
            # every listed perpetual collected once (a definition, open interest, funding) ...
            wait_for(lambda: all(before[v] <= _dirs(catalog, k) for v in VENUES
                                 for k in ("crypto_perpetual", "custom_open_interest", "custom_funding_rate_info")),
                     wait_s, what="every listed perpetual's definition, OI and funding")
            # ... then one is listed and one delisted on every venue while the mesh runs
            for v in VENUES:
                _post(urls[v] + f"/_emulator/list?symbol={NEW[v]}")
                _post(urls[v] + f"/_emulator/delist?symbol={gone[v]}")
            after = {v: trading(urls[v], v) for v in VENUES}
            new_ids = {v: NEW[v] + SUFFIX[v] for v in VENUES}
            assert all(new_ids[v] in after[v] and gone_ids[v] not in after[v] for v in VENUES)
            wait_for(lambda: all(new_ids[v] in _dirs(catalog, k) for v in VENUES
                                 for k in ("crypto_perpetual", "custom_open_interest", "custom_funding_rate_info")),
                     wait_s, what="the new listings' definition, OI and funding")
            wait_for(lambda: all(gone_ids[v] in _dirs(catalog, "custom_gap") for v in VENUES), wait_s, what="the delistings' gaps")
        finally:
            stop_mesh(proc, signal.SIGINT, timeout=180)  # the writer's last flush (shutdown_timeout_s 120)
    finally:
        emulator.terminate()
        emulator.wait(10)
    log = mesh_log(topology)
    assert "Traceback" not in log
    got = read_catalog(catalog)
    for v in VENUES:
        mine = lambda ids: {i for i in ids if i.endswith(SUFFIX[v])}  # noqa: E731
        everything = before[v] | after[v]  # listed at some time of the run: nothing else (no quarterly, USDC, delisted coin)
        assert mine(got["instruments"]) == everything, v
        assert mine({r[0] for r in got["oi"]}) == everything, v
        assert mine(set(got["funding"])) == everything, v
        ends = [r for r in got["gaps"] if r[0] == gone_ids[v] and r[2].startswith("delisted:")]
        streams = {"open_interest", "funding"} | ({"liquidations"} if v != "hyperliquid" else set())
        assert sorted(r[1] for r in ends) == sorted(streams), (v, ends)  # one end per stream
        end_ns = min(r[4] for r in ends)
        assert not [r for r in got["oi"] if r[0] == gone_ids[v] and r[1] > end_ns], f"{v}: OI stored after its delisting"
        assert f"{NEW[v]} is listed now: collecting {new_ids[v]}" in log
    # the new Binance listing's open interest is what the emulator served for it
    served = {(r["ts_ms"], r["open_interest"]) for r in load_ground_truth(truth)
              if r.get("kind") == "open_interest" and r.get("venue") == "BINANCE" and r["raw_symbol"] == NEW["binance"]}
    stored = {(ts // 1_000_000, oi) for iid, ts, oi in got["oi"] if iid == new_ids["binance"]}
    assert stored and stored <= served


def test_all_binance_perpetuals_within_its_rate_limits(tmp_path):
    """Every Binance perpetual's open interest (one request each: no bulk call) and funding, asked
    for every 2 s, while another program on the same IP (the CLI, a history download) uses 2,000
    of the 2,400 weight of every minute (the emulator's minute compressed to 15 s, limits
    unchanged): the collector reads the venue's used-weight header and paces the rest, ~27
    requests a second for ~300 asked for: no 429, no 418."""
    scale = 0.25
    emulator, urls, truth = start_emulator(tmp_path, "binance", 7, "--rate-limits", "--rate-limit-scale", str(scale), universe="full")
    window_s, windows = 60 * scale, set()

    def other_program() -> None:  # spends 2,000 weight at the start of every window (fixed, epoch-aligned)
        window = int(time.time() // window_s)
        if window not in windows:
            windows.add(window)
            _post(urls["binance"] + "/_emulator/ratelimit/consume?weight=2000")

    try:
        other_program()
        (tmp_path / "mesh").mkdir()
        # the catalog is not read: the writer's flush of 1,600 directories need not finish (its WAL keeps them)
        topology = _topology(tmp_path / "mesh", ("binance",), 2.0, shutdown_s=5, rate_limits=True)
        proc = start_mesh(topology, "--sandbox")
        try:
            listed = {i.removesuffix(SUFFIX["binance"]) for i in trading(urls["binance"], "binance")}

            def asked() -> set[str]:  # the symbols whose open interest the emulator served
                other_program()
                return {r["raw_symbol"] for r in load_ground_truth(truth)
                        if r.get("kind") == "open_interest" and r.get("endpoint") == "/fapi/v1/openInterest"}

            wait_for(lambda: listed <= asked(), 90, interval=0.5, what="every perpetual's open interest asked for")
            served = _get(urls["binance"] + "/_emulator/stats")["requests"]
            limits = _get(urls["binance"] + "/_emulator/ratelimit")
        finally:
            stop_mesh(proc, signal.SIGINT, timeout=60)
    finally:
        emulator.terminate()
        emulator.wait(10)
    assert len(listed) > 500 and served["/fapi/v1/premiumIndex"] >= 2, served
    # more requests than one window leaves (538 + the bulk call > 400 weight): they were paced
    # into later windows, not refused; how many windows that took depends on the machine's speed
    assert len(windows) >= 2, windows
    assert (limits["limited"], limits["banned"]) == (0, 0), limits
    assert "rate limit answer" not in mesh_log(topology)
