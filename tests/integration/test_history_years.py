"""Years of history through the real CLI (`derivs history`, its own process) against the emulator
(its own process, the venues' rate limits enforced at a tenth of their windows so the budget
paces the client as on the real venues, ten times faster), loaded back through NautilusTrader's
ParquetDataCatalog and compared with what the emulator served (its ground truth) and with its
market model (which buckets and settlements exist)."""

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest

from emulator.binance.instruments import _SPECS as BINANCE_SPECS
from emulator.bybit.instruments import _SPECS as BYBIT_SPECS
from emulator.history import oi_hole
from emulator.hyperliquid.history import LISTED_MS
from emulator.market import Market
from storage.series import read_series
from tests.harness import ROOT, read_catalog, start_emulator, wait_for

MS = 1_000_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
JAN_2021_MS = 1_609_459_200_000
JAN_2023_MS = 1_672_531_200_000


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("years-emu")
    proc, urls, truth = start_emulator(tmp, "binance,bybit,hyperliquid", 7, "--rate-limits", "--rate-limit-scale", "0.1")
    yield {"urls": urls, "truth": truth, "ready": tmp / "emulator.json"}
    proc.terminate()
    proc.wait(10)


def derivs(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


class Served:
    """What the emulator served from now on: its ground-truth file read from its current end."""

    def __init__(self, emu) -> None:
        self.path, self.offset = emu["truth"], emu["truth"].stat().st_size
        self.records: list[dict] | None = None

    def __call__(self, **match) -> list[dict]:
        if self.records is None:
            self.records = [msgspec.json.decode(line) for line in self._tail().splitlines() if line.strip()]
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def _tail(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        return data[: data.rfind(b"\n") + 1]


def model_hours(venue: str, coin: str, start_ms: int, now_ms: int) -> set[int]:
    """Hourly buckets the venue has in [start_ms, now - 3 h] (its own holes left out)."""
    m = Market(7)
    return {t for t in range(start_ms, now_ms - 3 * HOUR_MS, HOUR_MS) if not oi_hole(m, venue, coin, t, now_ms)}


def check_oi_equals_served(stored: list, rows: dict[int, dict], marks: dict[int, float]) -> None:
    """Nautilus rows [iid, ts_event, ts_init, oi, value]: one per served bucket, one side, x the mark."""
    ts = [r[1] // MS for r in stored]
    assert ts == sorted(set(ts)) == sorted(rows)
    for r in stored:
        t = rows[r[1] // MS]
        assert r[3] == t["single_open_interest"] and r[4] == t["single_open_interest"] * marks[r[1] // MS]


def test_bybit_oi_since_2021_at_one_hour_stored_whole(emu, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    asked, served = time.time_ns(), Served(emu)
    started = time.monotonic()
    done = derivs("history", "oi", "BTC", "-v", "bybit", "--since", "2021-01-01", "--period", "1h",
                  "--emulator", str(emu["ready"]), "--catalog", str(catalog), "--json")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    rows = {r["ts_ms"]: r for r in served(venue="BYBIT", kind="open_interest_history", raw_symbol="BTCUSDT")}
    marks = {r["ts_ms"]: r["open"] for r in served(venue="BYBIT", kind="mark_price_kline", raw_symbol="BTCUSDT")}
    assert min(rows) == JAN_2021_MS and summary["written"] == summary["fetched"] == len(rows) > 50_000
    loaded = read_catalog(catalog)
    stored = [r for r in loaded["open_interest"] if r[0] == "BTCUSDT-LINEAR.BYBIT"]
    check_oi_equals_served(stored, rows, marks)
    assert model_hours("bybit", "BTC", JAN_2021_MS, asked // MS) <= set(rows)  # nothing the venue has is missing
    assert {tuple(r[2:]) for r in loaded["open_interest_source"]} == {("history", 3600)}
    print(f"bybit BTC 1h OI since 2021-01-01: {len(rows)} rows, {summary['pages']} OI pages, {took:.1f} s")


LISTINGS = {  # venue -> (raw symbol in the ground truth, listing ms the emulator serves from)
    "binance": ("BTCUSDT", BINANCE_SPECS["BTC"].onboard_ms),
    "bybit": ("BTCUSDT", BYBIT_SPECS["BTC"].launch_ms),
    "hyperliquid": ("BTC", LISTED_MS["BTC"]),
}


@pytest.mark.parametrize("venue", ["binance", "bybit", pytest.param("hyperliquid", marks=pytest.mark.slow)])  # 30,000 hourly rows
def test_funding_back_to_listing(emu, tmp_path: Path, venue: str) -> None:
    raw, listed = LISTINGS[venue]
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    served = Served(emu)
    started = time.monotonic()
    done = derivs("history", "funding", "BTC", "-v", venue, "--since", "2019-01-01", "--emulator", str(emu["ready"]),
                  "--catalog", str(catalog), "--json")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    truth = {r["ts_ms"]: r for r in served(venue=venue.upper(), kind="funding_history", raw_symbol=raw)}
    stored = [r for r in read_catalog(catalog)["funding_settlements"]]
    ts = [r[1] // MS for r in stored]
    assert ts == sorted(set(ts)) == sorted(truth)  # every settlement served, once; nothing else
    assert listed <= ts[0] < listed + DAY_MS  # from the listing on (nothing exists before it)
    assert summary["written"] == len(ts) > 2_000
    minutes = [round((b - a) / 60_000) for a, b in zip(ts, ts[1:])]  # spacing of the served rows (Hyperliquid: ms late)
    for i, r in enumerate(stored):
        t = truth[r[1] // MS]
        assert r[3] == t["rate"]
        if r[4] != t["interval_minutes"]:  # only a row with a hole on each side may be taken for a change
            assert 0 < i < len(ts) - 1 and minutes[i - 1] == minutes[i] == r[4] == 2 * t["interval_minutes"], r
        if venue == "binance":
            assert r[7] == t["mark_price"]
    # a rerun asks for nothing before the listing again: every row is already there
    again = json.loads(derivs("history", "funding", "BTC", "-v", venue, "--since", "2019-01-01", "--emulator",
                              str(emu["ready"]), "--catalog", str(catalog), "--json").stdout.splitlines()[-1])
    assert again["already_stored"] == len(ts) and again["written"] == 0
    print(f"{venue} BTC funding back to listing: {len(ts)} rows, {summary['pages']} pages, {took:.1f} s")


def fault(url: str, query: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/_emulator/fault?{query}", method="POST"), timeout=5).read()


def test_interrupted_download_resumes_with_nothing_lost_or_doubled(emu, tmp_path: Path) -> None:
    """SIGINT to the real CLI once chunks are in the catalog: it keeps them and says so; the same
    command again fetches the rest; the result is every served bucket exactly once."""
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    iid = "ETHUSDT-LINEAR.BYBIT"
    url = emu["urls"]["bybit"]
    args = [sys.executable, "-m", "cli", "history", "oi", "ETH", "-v", "bybit", "--since", "2023-01-01", "--period", "1h",
            "--emulator", str(emu["ready"]), "--catalog", str(catalog), "--json"]
    asked, served = time.time_ns(), Served(emu)
    fault(url, "mode=timeout&delay=0.1")  # every answer 150 ms late: the download lasts long enough to be cut
    try:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: read_series(catalog, "oi", iid).num_rows > 0, 90, what="the first chunk in the catalog")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        fault(url, "mode=none")
    assert proc.returncode == 130 and "Traceback" not in err and not out, err
    line = re.search(r"interrupted: BYBIT ETHUSDT-LINEAR.BYBIT oi: (\d+) rows stored \((.+)\.\.(.+)\); "
                     r"rerun the same command to continue", err)
    assert line, err
    kept = int(line.group(1))
    first = read_series(catalog, "oi", iid)["ts_event"].to_pylist()
    expected_all = model_hours("bybit", "ETH", JAN_2023_MS, asked // MS)
    assert len(first) == kept and first == sorted(first)
    assert set(first) >= {t * MS for t in expected_all if t <= first[-1] // MS}  # a prefix, without holes of ours
    assert kept < len(expected_all)  # it was cut in the middle

    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["already_stored"] == kept and summary["written"] == summary["fetched"]
    rows = {r["ts_ms"]: r for r in served(venue="BYBIT", kind="open_interest_history", raw_symbol="ETHUSDT")}
    marks = {r["ts_ms"]: r["open"] for r in served(venue="BYBIT", kind="mark_price_kline", raw_symbol="ETHUSDT")}
    stored = [r for r in read_catalog(catalog)["open_interest"] if r[0] == iid]
    check_oi_equals_served(stored, {t: r for t, r in rows.items() if t >= JAN_2023_MS}, marks)
    assert kept + summary["written"] == len(stored) and expected_all <= {r[1] // MS for r in stored}
