"""History end to end: real ccxt against the emulator subprocess, real catalog files, Nautilus
reading them in a fresh process. Ranges are relative to now (the emulator serves real time)."""

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import ccxt
import pytest

from storage.files import intervals_disjoint, list_files
from storage.store import CatalogStore
from venues.history import HistoryUnavailable, fetch_funding_history, fetch_open_interest_history
from venues import adapter
from emulator.ground_truth import load_ground_truth
from emulator.history import oi_hole
from emulator.market import Market
from tests.harness import ROOT, read_catalog, start_emulator

MS = 1_000_000
NS = 1_000_000_000
STEP_MS = 300_000
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history-emu")
    proc, urls, truth = start_emulator(tmp)
    ready = tmp / "emulator.json"
    yield {"urls": urls, "truth": truth, "ready": ready}
    proc.terminate()
    proc.wait(10)


def stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/_emulator/stats", timeout=5) as r:
        return json.load(r)["requests"]


def truth(emu, **match) -> list[dict]:
    return [r for r in load_ground_truth(emu["truth"]) if all(r.get(k) == v for k, v in match.items())]


def clear_range(venue: str, coin: str, days: float, back_h: float = 3) -> tuple[int, int]:
    """A recent [start, end] ms on the 5-minute grid whose ends are not holes of the venue."""
    now = time.time_ns() // MS
    end = (now - int(back_h * 3_600_000)) // STEP_MS * STEP_MS
    start = end - int(days * DAY_MS) // STEP_MS * STEP_MS
    m = Market(7)
    while oi_hole(m, venue, coin, start, now):
        start += STEP_MS
    while oi_hole(m, venue, coin, end, now):
        end -= STEP_MS
    return start, end


def run(venue: str, url: str, coro_fn, symbol: str = "BTC"):
    async def main():
        ad = adapter(venue)
        client = ad.client(url)
        try:
            market = ad.resolve(await client.load_markets(), symbol)
            return await coro_fn(ad, client, market)
        finally:
            await client.close()

    return asyncio.run(main())


def test_binance_oi_history_pages_of_500_equal_ground_truth(emu) -> None:
    url = emu["urls"]["binance"]
    start, end = clear_range("binance", "BTC", 4.2)  # ~1210 buckets: 3 windows
    before = stats(url).get("/futures/data/openInterestHist", 0)
    rows = run("binance", url, lambda ad, c, m: fetch_open_interest_history(ad, c, m, start * MS, end * MS, "5m"))
    assert stats(url)["/futures/data/openInterestHist"] - before == 3
    served = {r["ts_ms"]: r for r in truth(emu, venue="BINANCE", kind="open_interest_history", raw_symbol="BTCUSDT")
              if start <= r["ts_ms"] <= end}
    ts = [r.ts_event // MS for r in rows]
    assert ts == sorted(set(ts)) == sorted(served)  # continuous, no duplicates, exactly what was served
    assert all(t % STEP_MS == 0 for t in ts)
    for r in rows:
        t = served[r.ts_event // MS]
        assert (r.open_interest, r.open_interest_value) == (t["open_interest"], t["open_interest_value"])
        assert r.instrument_id == "BTCUSDT-PERP.BINANCE"


def test_bybit_oi_history_cursor_pages_equal_ground_truth(emu) -> None:
    url = emu["urls"]["bybit"]
    start, end = clear_range("bybit", "ETH", 2.0)  # 577 buckets: 3 cursor pages of 200
    before = stats(url)
    rows = run("bybit", url, lambda ad, c, m: fetch_open_interest_history(ad, c, m, start * MS, end * MS, "5m"), "ETH")
    after = stats(url)
    assert after["/v5/market/open-interest"] - before.get("/v5/market/open-interest", 0) == 3
    assert after["/v5/market/mark-price-kline"] - before.get("/v5/market/mark-price-kline", 0) == 1
    served = {r["ts_ms"]: r for r in truth(emu, venue="BYBIT", kind="open_interest_history", raw_symbol="ETHUSDT")
              if start <= r["ts_ms"] <= end}
    marks = {r["ts_ms"]: r["open"] for r in truth(emu, venue="BYBIT", kind="mark_price_kline", raw_symbol="ETHUSDT")}
    ts = [r.ts_event // MS for r in rows]
    assert ts == sorted(set(ts)) == sorted(served)
    for r in rows:
        t = served[r.ts_event // MS]
        assert r.open_interest == t["single_open_interest"]  # one side (openInterest counts both)
        assert r.open_interest_value == t["single_open_interest"] * marks[r.ts_event // MS]


@pytest.mark.parametrize("venue, symbol, raw, days_back, days, page_endpoint, pages", [
    # Binance DOGE: 8 h, then 4 h from 2026-10-01, 8 h again from 2026-11-10; > 1000 rows: 2 pages
    ("binance", "DOGE", "DOGEUSDT", 320, 316, "/fapi/v1/fundingRate", 2),
    ("bybit", "DOGE", "DOGEUSDT", 90, 86, "/v5/market/funding/history", 3),  # 4 h: ~540 rows, 200 a page
    ("hyperliquid", "BTC", "BTC", 23, 21, "info:fundingHistory", 2),  # hourly: 21 d + 2 d padding, 500 a page
])
def test_funding_history_pages_equal_ground_truth(emu, venue, symbol, raw, days_back, days, page_endpoint, pages) -> None:
    url = emu["urls"][venue]
    now = time.time_ns() // MS
    start = (now - days_back * DAY_MS) // DAY_MS * DAY_MS
    end = start + days * DAY_MS
    before = stats(url).get(page_endpoint, 0)
    rows = run(venue, url, lambda ad, c, m: fetch_funding_history(ad, c, m, start * MS, end * MS), symbol)
    assert stats(url)[page_endpoint] - before == pages
    served = {r["ts_ms"]: r for r in truth(emu, venue=venue.upper(), kind="funding_history", raw_symbol=raw)
              if start <= r["ts_ms"] <= end}
    ts = [r.ts_event // MS for r in rows]
    assert ts == sorted(set(ts)) == sorted(served)
    for r in rows:
        t = served[r.ts_event // MS]
        assert r.settled and r.rate == t["rate"] and r.next_funding_ns is None
        assert r.interval_minutes == t["interval_minutes"], _iso(r.ts_event)
        if venue == "binance":
            assert r.mark_price == t["mark_price"]
    if venue == "binance":
        assert {r.interval_minutes for r in rows} == {240, 480}


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / NS))


def test_venue_limits_and_errors(emu) -> None:
    now = time.time_ns() // MS

    async def binance_old(ad, c, m):
        with pytest.raises(ccxt.BadRequest, match="startTime"):  # the venue's 30-day retention
            await c.fapiDataGetOpenInterestHist({"symbol": "BTCUSDT", "period": "5m", "startTime": now - 31 * DAY_MS})
        with pytest.raises(ccxt.BadRequest, match="period"):
            await c.fapiDataGetOpenInterestHist({"symbol": "BTCUSDT", "period": "1m"})
        with pytest.raises(HistoryUnavailable, match="30 days"):
            await fetch_open_interest_history(ad, c, m, (now - 60 * DAY_MS) * MS, (now - 40 * DAY_MS) * MS)
        notes: list[str] = []
        rows = await fetch_open_interest_history(ad, c, m, (now - 31 * DAY_MS) * MS, (now - 29 * DAY_MS) * MS, "1h", None, notes)
        assert rows and rows[0].ts_event >= (now - 30 * DAY_MS) * MS and "30 days" in notes[0]

    run("binance", emu["urls"]["binance"], binance_old)

    async def bybit_start_alone(ad, c, m):
        with pytest.raises(ccxt.BadRequest):  # retCode 10001
            await c.publicGetV5MarketFundingHistory({"category": "linear", "symbol": "BTCUSDT", "startTime": now - DAY_MS})

    run("bybit", emu["urls"]["bybit"], bybit_start_alone)

    async def hyperliquid_oi(ad, c, m):
        with pytest.raises(HistoryUnavailable, match="no open-interest history"):
            await fetch_open_interest_history(ad, c, m, (now - DAY_MS) * MS, now * MS)

    run("hyperliquid", emu["urls"]["hyperliquid"], hyperliquid_oi)


def derivs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def test_cli_incremental_merge_and_nautilus_load(emu, tmp_path: Path) -> None:
    catalog = str(tmp_path / "catalog")
    start, end = clear_range("binance", "BTC", 1.0, back_h=30)
    ext_end = end + 6 * 3_600_000
    while oi_hole(Market(7), "binance", "BTC", ext_end, time.time_ns() // MS):
        ext_end -= STEP_MS
    b_url, y_url = emu["urls"]["binance"], emu["urls"]["bybit"]
    common = ["--emulator", str(emu["ready"]), "--catalog", catalog, "--json"]

    def oi(since: int, until: int) -> dict:
        done = derivs("history", "oi", "BTC", "-v", "binance", "--since", _utc(since), "--until", _utc(until + 1000), *common)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = oi(start, end)
    assert first["fetched"] == first["written"] > 280 and first["already_stored"] == 0
    # the same range again: nothing asked
    before = stats(b_url)["/futures/data/openInterestHist"]
    again = oi(start, end)
    assert stats(b_url)["/futures/data/openInterestHist"] == before
    assert (again["fetched"], again["written"], again["already_stored"]) == (0, 0, first["written"])
    # extended by 6 hours: one request, only the new part
    ext = oi(start, ext_end)
    assert stats(b_url)["/futures/data/openInterestHist"] == before + 1
    assert 0 < ext["fetched"] <= 72 and ext["written"] == ext["fetched"]

    # funding on Bybit: the repeat asks nothing
    f_args = ["history", "funding", "ETH", "-v", "bybit", "--since", "2026-10-01", "--until", "2026-11-01", *common]
    done = derivs(*f_args)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] > 80
    n = stats(y_url)["/v5/market/funding/history"]
    assert json.loads(derivs(*f_args).stdout)["fetched"] == 0 and stats(y_url)["/v5/market/funding/history"] == n

    # an overlapping back-fill through the API merges without duplicates
    async def overlap(ad, c, m):
        return await fetch_open_interest_history(ad, c, m, (start + 3_600_000) * MS, (ext_end + 3_600_000) * MS)

    rows = run("binance", b_url, overlap)
    CatalogStore(catalog).write(rows)
    files = list_files(Path(catalog) / "data" / "custom_open_interest" / "BTCUSDT-PERP.BINANCE")
    assert intervals_disjoint(files)

    cov = [json.loads(line) for line in derivs("coverage", "--catalog", catalog, "--json").stdout.splitlines()]
    oi_cov = next(c for c in cov if c["kind"] == "coverage" and c["series"] == "oi" and c["instrument_id"] == "BTCUSDT-PERP.BINANCE")
    queried = [json.loads(line) for line in derivs("query", "oi", "BTC", "-v", "binance", "--catalog", catalog, "--json").stdout.splitlines()]
    csv_out = derivs("query", "funding", "ETHUSDT-LINEAR.BYBIT", "--since", "2026-10-01", "--until", "2026-10-02",
                     "--catalog", catalog, "--csv").stdout.splitlines()
    assert csv_out[0].startswith("time,venue,instrument_id,ts_event,rate,interval_minutes") and len(csv_out) == 1 + 3

    loaded = read_catalog(Path(catalog))  # NautilusTrader, fresh process
    nt_oi = [r for r in loaded["open_interest"] if r[0] == "BTCUSDT-PERP.BINANCE"]
    nt_ts = [r[1] for r in nt_oi]
    assert nt_ts == sorted(set(nt_ts)) and len(nt_ts) == oi_cov["rows"] == len(queried)
    assert [(q["ts_event"], q["open_interest"]) for q in queried] == [(r[1], r[3]) for r in nt_oi]
    served = {r["ts_ms"] * MS: r for r in truth(emu, venue="BINANCE", kind="open_interest_history", raw_symbol="BTCUSDT")}
    assert all((r[3], r[4]) == (served[r[1]]["open_interest"], served[r[1]]["open_interest_value"]) for r in nt_oi)
    nt_funding = [r for r in loaded["funding_settlements"] if r[0] == "ETHUSDT-LINEAR.BYBIT"]
    assert len(nt_funding) == json.loads(derivs(*f_args).stdout)["already_stored"]
    assert {r[4] for r in nt_funding} == {480}
    assert not [r for r in loaded["funding"] if r[0] == "ETHUSDT-LINEAR.BYBIT"]  # no settlement is a FundingRateUpdate


def test_funding_with_stored_neighbours_asks_only_for_the_range(emu) -> None:
    """A top-up knows the stored settlements around its range: no padding is fetched, and the
    edge rows still get the interval of their period."""
    url = emu["urls"]["bybit"]
    now = time.time_ns() // MS
    h8 = 8 * 3_600_000
    a = (now - 20 * DAY_MS) // h8 * h8
    b = a + 10 * h8
    known = [(a - 2 * h8) * MS, (a - h8) * MS, (b + h8) * MS]
    asked_at = time.time_ns()
    rows = run("bybit", url, lambda ad, c, m: fetch_funding_history(ad, c, m, a * MS, b * MS, known_ns=known), "ETH")
    served = [r for r in truth(emu, venue="BYBIT", kind="funding_history", raw_symbol="ETHUSDT") if r["served_ns"] >= asked_at]
    assert served and all(a <= r["ts_ms"] <= b for r in served)  # nothing outside the range was asked for
    assert [r.ts_event // MS for r in rows] == sorted(r["ts_ms"] for r in served)
    by_ts = {r["ts_ms"]: r for r in served}
    assert all(r.interval_minutes == by_ts[r.ts_event // MS]["interval_minutes"] == 480 for r in rows)
    # without them, a day on each side is fetched to decide the edge rows' intervals
    asked_at = time.time_ns()
    run("bybit", url, lambda ad, c, m: fetch_funding_history(ad, c, m, a * MS, b * MS), "ETH")
    padded = [r for r in truth(emu, venue="BYBIT", kind="funding_history", raw_symbol="ETHUSDT") if r["served_ns"] >= asked_at]
    assert min(r["ts_ms"] for r in padded) < a and max(r["ts_ms"] for r in padded) > b
