"""The real ccxt 4.5.90 async clients against the emulator, run as a real subprocess on
loopback (nothing mocked): markets, open interest, funding, errors, a venue being down,
and that what ccxt returns equals the ground truth the emulator recorded."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ccxt
import pytest

from venues import adapter_class
from venues import plain_client
from emulator.ground_truth import load_ground_truth
from emulator.process import spawn_emulator, stop_process

ROOT = Path(__file__).resolve().parents[2]
HOUR_MS = 3_600_000


@dataclass
class Running:
    proc: subprocess.Popen
    urls: dict[str, str]
    ground_truth: Path
    log: Path
    startup_s: float

    def records(self, **match: object) -> list[dict]:
        return [r for r in load_ground_truth(self.ground_truth) if all(r.get(k) == v for k, v in match.items())]

    def last(self, **match: object) -> dict:
        found = self.records(**match)
        assert found, f"no ground-truth record matching {match}"
        return found[-1]

    def log_text(self) -> str:
        return self.log.read_text()


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> float:
    """Signal the emulator and return how long it took to exit (kill after 5 s)."""
    return stop_process(proc, sig)


def _start(tmp: Path, venues: str) -> Running:
    """The emulator listing the reference coins only (`--universe core`): these tests name every
    market they expect; the full universe's counts are tests/integration/test_emulator_universe.py's."""
    gt = tmp / "ground_truth.jsonl"
    emu = spawn_emulator(tmp / "ready.json", "--host", "127.0.0.1", "--seed", "7", "--venues", venues, "--universe", "core",
                         "--port-binance", "0", "--port-bybit", "0", "--port-hyperliquid", "0",
                         "--ground-truth", str(gt), "--log-level", "DEBUG", log=tmp / "emulator.log", cwd=ROOT,
                         timeout_s=15)
    return Running(emu.proc, emu.urls, gt, emu.log, emu.startup_s)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = _start(tmp_path_factory.mktemp("emu_all"), "binance,bybit,hyperliquid")
    try:
        yield running
    finally:
        _stop(running.proc)


def _client(venue: str, url: str):  # noqa: ANN202
    return plain_client(venue, url)


async def _with_client(venue: str, url: str, fn):  # noqa: ANN001, ANN202
    ex = _client(venue, url)
    try:
        return await fn(ex)
    finally:
        await ex.close()


def _requests_during(emu: Running, action) -> list[str]:  # noqa: ANN001
    """Request log lines ("venue METHOD path status") the emulator wrote while action ran."""
    before = len(emu.log_text().splitlines())
    asyncio.run(action())
    time.sleep(0.05)  # the emulator flushes each log line; give it a moment to land
    lines = emu.log_text().splitlines()[before:]
    return [line.split(" - ", 1)[1] for line in lines if "emulator.common:middleware" in line]


# -- startup ----------------------------------------------------------------------------------


def test_ready_file_lists_every_venue_and_starts_fast(emu: Running) -> None:
    assert set(emu.urls) == {"binance", "bybit", "hyperliquid"}
    assert len({u.rsplit(":", 1)[1] for u in emu.urls.values()}) == 3  # one port per venue
    assert all(u.startswith("http://127.0.0.1:") for u in emu.urls.values())
    # Interpreter start + imports + bind: well under a second on an idle machine.
    assert emu.startup_s < 10.0, emu.startup_s  # generous: a busy machine must not fail it
    assert "emulator ready" in emu.log_text()


# -- markets --------------------------------------------------------------------------------


def test_load_markets_on_each_venue_and_the_calls_it_makes(emu: Running) -> None:
    markets: dict[str, dict] = {}

    def loader(venue: str):  # noqa: ANN202
        async def run() -> None:
            markets[venue] = await _with_client(venue, emu.urls[venue], lambda ex: ex.load_markets())

        return run

    calls = {v: _requests_during(emu, loader(v)) for v in ("binance", "bybit", "hyperliquid")}
    assert calls["binance"] == ["binance GET /fapi/v1/exchangeInfo 200"]
    assert calls["bybit"] == [
        "bybit GET /v5/market/instruments-info?category=linear&limit=1000 200",
        "bybit GET /v5/market/instruments-info?category=linear&limit=1000&status=PreLaunch 200",
    ] or sorted(calls["bybit"]) == sorted([  # the two are issued concurrently
        "bybit GET /v5/market/instruments-info?category=linear&limit=1000 200",
        "bybit GET /v5/market/instruments-info?category=linear&limit=1000&status=PreLaunch 200",
    ])
    assert sorted(calls["hyperliquid"]) == ["hyperliquid POST /info metaAndAssetCtxs 200",
                                            "hyperliquid POST /info spotMeta 200"]

    binance = markets["binance"]
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
        m = binance[symbol]
        assert (m["swap"], m["linear"], m["active"], m["contractSize"]) == (True, True, True, 1.0)
    assert binance["BTC/USDT:USDT"]["precision"] == {"amount": 0.001, "price": 0.1, "base": 1e-08, "quote": 1e-08}
    assert binance["BTC/USDT:USDT"]["limits"]["cost"]["min"] == 100.0
    quarterly = [m for m in binance.values() if m["future"]]
    assert len(quarterly) == 1 and quarterly[0]["symbol"].startswith("BTC/USDT:USDT-")
    assert quarterly[0]["expiry"] > time.time() * 1000 and not quarterly[0]["swap"]
    assert binance["XRP/USDC:USDC"]["active"] is False  # PENDING_TRADING -> inactive
    active_perps = sorted(s for s, m in binance.items() if m["swap"] and m["active"])
    assert active_perps == ["BTC/USDT:USDT", "DOGE/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "XRP/USDT:USDT"]

    bybit = markets["bybit"]
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT", "HYPE/USDT:USDT"):
        assert bybit[symbol]["swap"] and bybit[symbol]["active"] and bybit[symbol]["linear"]
    assert bybit["BTC/USDT:USDT"]["info"]["fundingInterval"] == 480
    assert [m["type"] for m in bybit.values() if not m["swap"]] == ["future"]

    hl = markets["hyperliquid"]
    assert sorted(s for s, m in hl.items() if m["active"]) == ["BTC/USDC:USDC", "DOGE/USDC:USDC", "ETH/USDC:USDC",
                                                                "HYPE/USDC:USDC", "SOL/USDC:USDC", "XRP/USDC:USDC"]
    assert sorted(s for s, m in hl.items() if not m["active"]) == ["HPOS/USDC:USDC", "MATIC/USDC:USDC"]  # isDelisted
    assert hl["BTC/USDC:USDC"]["id"] == "0" and hl["BTC/USDC:USDC"]["limits"]["leverage"]["max"] == 40

    # The ground truth has one instrument record per served symbol.
    served = {r["raw_symbol"] for r in emu.records(venue="BINANCE", kind="instrument")}
    assert {"BTCUSDT", "ETHUSDT", "XRPUSDC"} <= served


def test_pro_clients_use_the_same_config_and_keep_their_ws_urls(emu: Running) -> None:
    import ccxt.pro as ccxtpro

    async def run() -> None:
        for venue, cls in (("binance", ccxtpro.binanceusdm), ("bybit", ccxtpro.bybit),
                           ("hyperliquid", ccxtpro.hyperliquid)):
            ex = cls(adapter_class(venue).sandbox_config(emu.urls[venue]))
            try:
                assert "BTC/USDT:USDT" in await ex.load_markets() or venue == "hyperliquid"
                ws = ex.urls["api"]["ws"]
                port = emu.urls[venue].rsplit(":", 1)[1]
                if venue == "binance":
                    assert ws["linear"] == f"ws://127.0.0.1:{port}/ws" and "inverse" in ws
                elif venue == "bybit":
                    assert ws["public"]["linear"].startswith(f"ws://127.0.0.1:{port}/")
                    assert "private" in ws and "spot" in ws["public"]  # deep-merged, not replaced
                else:
                    assert ws["public"] == f"ws://127.0.0.1:{port}/ws"
            finally:
                await ex.close()

    asyncio.run(run())


# -- values vs ground truth -------------------------------------------------------------------


def test_binance_open_interest_funding_and_intervals_match_ground_truth(emu: Running) -> None:
    async def run(ex):  # noqa: ANN001, ANN202
        await ex.load_markets()
        oi = await ex.fetch_open_interest("BTC/USDT:USDT")
        oi_rec = emu.last(venue="BINANCE", kind="open_interest", raw_symbol="BTCUSDT")
        rates = await ex.fetch_funding_rates()
        intervals = await ex.fetch_funding_intervals()
        return oi, oi_rec, rates, intervals

    oi, oi_rec, rates, intervals = asyncio.run(_with_client("binance", emu.urls["binance"], run))
    assert oi["openInterestAmount"] == oi_rec["open_interest"]
    assert oi["timestamp"] == oi_rec["ts_ms"]
    assert 40_000 < oi["openInterestAmount"] < 160_000
    assert oi["openInterestValue"] is None  # ccxt: only the history endpoint carries a value
    assert oi_rec["open_interest_value"] == oi_rec["open_interest"] * oi_rec["mark_price"]

    records = {r["raw_symbol"]: r for r in emu.records(venue="BINANCE", kind="funding_rate",
                                                       endpoint="/fapi/v1/premiumIndex")}
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"):
        fr, rec = rates[symbol], records[rates[symbol]["info"]["symbol"]]
        assert fr["fundingRate"] == rec["rate"]
        assert fr["markPrice"] == rec["mark_price"] and fr["indexPrice"] == rec["index_price"]
        assert fr["timestamp"] == rec["ts_ms"]
        assert fr["fundingTimestamp"] == rec["next_funding_ms"] > fr["timestamp"]  # the *next* settlement
        assert fr["interval"] is None  # premiumIndex has no interval
        assert -0.0005 <= fr["fundingRate"] <= 0.001
    assert rates["SOL/USDT:USDT"]["fundingTimestamp"] % (4 * HOUR_MS) == 0
    # The quarterly is in premiumIndex too, without funding.
    quarterly = [fr for s, fr in rates.items() if s.startswith("BTC/USDT:USDT-")]
    assert len(quarterly) == 1 and quarterly[0]["fundingRate"] is None

    # fundingInfo lists only the adjusted (non-8h) symbols.
    assert {s: fr["interval"] for s, fr in intervals.items()} == {"SOL/USDT:USDT": "4h"}
    assert emu.last(venue="BINANCE", endpoint="/fapi/v1/fundingInfo")["interval_minutes"] == 240


def test_bybit_open_interest_and_funding_match_ground_truth(emu: Running) -> None:
    async def run(ex):  # noqa: ANN001, ANN202
        await ex.load_markets()
        oi = await ex.fetch_open_interest("BTC/USDT:USDT", {"interval": "5m"})
        oi_default = await ex.fetch_open_interest("ETH/USDT:USDT")  # ccxt's default interval is 1h
        rates = await ex.fetch_funding_rates()
        return oi, oi_default, rates

    asked_ms = time.time() * 1000  # the bucket is the latest closed one when the venue answered
    oi, oi_default, rates = asyncio.run(_with_client("bybit", emu.urls["bybit"], run))
    now_ms = time.time() * 1000
    rows = emu.records(venue="BYBIT", kind="open_interest", endpoint="/v5/market/open-interest", raw_symbol="BTCUSDT")
    newest = max(rows, key=lambda r: r["ts_ms"])
    assert oi["timestamp"] == newest["ts_ms"] and oi["openInterestAmount"] == newest["open_interest"]
    assert oi["timestamp"] % 300_000 == 0 and asked_ms - 300_000 <= oi["timestamp"] <= now_ms  # latest closed 5 min
    assert oi_default["timestamp"] % HOUR_MS == 0
    assert oi["openInterestValue"] is None

    for symbol, hours in (("BTC/USDT:USDT", 8), ("DOGE/USDT:USDT", 4), ("HYPE/USDT:USDT", 1)):
        fr = rates[symbol]
        raw = fr["info"]["symbol"]
        rate_rec = emu.last(venue="BYBIT", kind="funding_rate", raw_symbol=raw)
        oi_rec = emu.last(venue="BYBIT", kind="open_interest", endpoint="/v5/market/tickers", raw_symbol=raw)
        assert fr["fundingRate"] == rate_rec["rate"]
        assert fr["markPrice"] == rate_rec["mark_price"] and fr["indexPrice"] == rate_rec["index_price"]
        assert fr["timestamp"] == rate_rec["ts_ms"] == oi_rec["ts_ms"]  # envelope "time"
        assert fr["fundingTimestamp"] == rate_rec["next_funding_ms"]
        assert fr["interval"] == f"{hours}h" and rate_rec["interval_minutes"] == hours * 60
        assert fr["info"]["fundingIntervalHour"] == str(hours)
        assert float(fr["info"]["openInterest"]) == oi_rec["open_interest"]
        assert float(fr["info"]["openInterestValue"]) == oi_rec["open_interest_value"]
    future = [fr for s, fr in rates.items() if s.startswith("BTC/USDT:USDT-")]
    assert len(future) == 1 and future[0]["fundingRate"] is None


def test_hyperliquid_open_interests_funding_and_predicted_match_ground_truth(emu: Running) -> None:
    async def run(ex):  # noqa: ANN001, ANN202
        await ex.load_markets()
        ois = await ex.fetch_open_interests(["BTC/USDC:USDC", "ETH/USDC:USDC"])
        oi_recs = {c: emu.last(venue="HYPERLIQUID", kind="open_interest", coin=c) for c in ("BTC", "ETH")}
        rates = await ex.fetch_funding_rates()
        predicted = await ex.publicPostInfo({"type": "predictedFundings"})
        return ois, oi_recs, rates, predicted

    ois, oi_recs, rates, predicted = asyncio.run(_with_client("hyperliquid", emu.urls["hyperliquid"], run))
    assert sorted(ois) == ["BTC/USDC:USDC", "ETH/USDC:USDC"]
    for coin in ("BTC", "ETH"):
        oi, rec = ois[f"{coin}/USDC:USDC"], oi_recs[coin]
        assert oi["openInterestAmount"] == rec["open_interest"]
        assert oi["timestamp"] is None and rec["ts_ms"] is None  # Hyperliquid carries no timestamp
    assert 15_000 < ois["BTC/USDC:USDC"]["openInterestAmount"] < 60_000

    for coin in ("BTC", "ETH", "HYPE"):
        fr = rates[f"{coin}/USDC:USDC"]
        rec = emu.last(venue="HYPERLIQUID", kind="funding_rate", endpoint="metaAndAssetCtxs", coin=coin)
        assert fr["fundingRate"] == rec["rate"]
        assert fr["markPrice"] == rec["mark_price"] and fr["indexPrice"] == rec["index_price"]
        assert fr["interval"] == "1h" and fr["timestamp"] is None
        # ccxt computes the next full hour from its own clock: equal unless an hour ticked over.
        assert fr["fundingTimestamp"] - rec["next_funding_ms"] in (0, HOUR_MS)
        assert abs(fr["fundingRate"]) < 0.001 / 8 + 1e-12  # hourly rates are ~1/8 of 8h ones

    by_coin = {coin: dict(entries) for coin, entries in predicted}
    assert set(by_coin) == {"BTC", "ETH", "SOL", "XRP", "DOGE", "HYPE"}
    assert [label for label, _ in predicted[0][1]] == ["BinPerp", "HlPerp", "BybitPerp"]
    assert by_coin["HYPE"]["BinPerp"] is None  # not listed on Binance
    btc = by_coin["BTC"]
    rec = emu.last(venue="HYPERLIQUID", endpoint="predictedFundings", coin="BTC")
    assert float(btc["HlPerp"]["fundingRate"]) == rec["predicted_rate"]
    assert btc["HlPerp"]["fundingIntervalHours"] == 1
    assert btc["BinPerp"]["fundingIntervalHours"] == 8 and by_coin["SOL"]["BinPerp"]["fundingIntervalHours"] == 4
    assert float(btc["BinPerp"]["fundingRate"]) == rec["predicted"]["BINANCE"]["rate"]
    # Cross-venue consistency: what Hyperliquid predicts for Binance is what Binance serves.
    binance_btc = emu.records(venue="BINANCE", kind="funding_rate", raw_symbol="BTCUSDT",
                              next_funding_ms=btc["BinPerp"]["nextFundingTime"])
    assert all(r["rate"] == float(btc["BinPerp"]["fundingRate"]) for r in binance_btc)


def test_bybit_cursor_pagination(emu: Running) -> None:
    """ccxt's load_markets asks for limit=1000 (one page); the cursor protocol still works."""

    async def run(ex):  # noqa: ANN001, ANN202
        symbols, cursor, pages = [], None, 0
        while True:
            params = {"category": "linear", "limit": 3, **({"cursor": cursor} if cursor else {})}
            result = (await ex.publicGetV5MarketInstrumentsInfo(params))["result"]
            symbols += [i["symbol"] for i in result["list"]]
            pages += 1
            cursor = result["nextPageCursor"]
            if not cursor:
                break
        now = ex.milliseconds()
        window = {"category": "linear", "symbol": "ETHUSDT", "intervalTime": "5min",
                  "startTime": now - 3_000_000, "endTime": now, "limit": 4}
        first = (await ex.publicGetV5MarketOpenInterest(window))["result"]
        second = (await ex.publicGetV5MarketOpenInterest({**window, "cursor": first["nextPageCursor"]}))["result"]
        return symbols, pages, first, second

    symbols, pages, first, second = asyncio.run(_with_client("bybit", emu.urls["bybit"], run))
    assert pages == 3 and len(symbols) == len(set(symbols)) == 7
    stamps = [int(r["timestamp"]) for r in first["list"] + second["list"]]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 8  # newest first, no overlap
    assert all(b - a == -300_000 for a, b in zip(stamps, stamps[1:], strict=False))
    assert first["nextPageCursor"] and second["nextPageCursor"]


# -- errors -------------------------------------------------------------------------------------


def test_unknown_symbols_and_requests_raise_like_the_real_venues(emu: Running) -> None:
    async def binance(ex) -> None:  # noqa: ANN001
        await ex.load_markets()
        with pytest.raises(ccxt.BadSymbol):  # rejected by ccxt before any request
            await ex.fetch_open_interest("FOO/USDT:USDT")
        with pytest.raises(ccxt.BadSymbol, match="-1121"):  # HTTP 400 {"code":-1121,"msg":"Invalid symbol."}
            await ex.fapiPublicGetOpenInterest({"symbol": "FOOUSDT"})
        with pytest.raises(ccxt.BadSymbol):
            await ex.fapiPublicGetPremiumIndex({"symbol": "XRPUSDC"})  # listed but not trading yet
        with pytest.raises(ccxt.BaseError):  # an endpoint we do not emulate: 404, logged as unknown
            await ex.fapiPublicGetTicker24hr({"symbol": "BTCUSDT"})

    async def bybit(ex) -> None:  # noqa: ANN001
        with pytest.raises(ccxt.BadRequest, match="symbol invalid"):  # retCode 10001 with HTTP 200
            await ex.publicGetV5MarketTickers({"category": "linear", "symbol": "FOOUSDT"})
        with pytest.raises(ccxt.BadRequest, match="10001"):
            await ex.publicGetV5MarketOpenInterest({"category": "linear", "symbol": "FOOUSDT", "intervalTime": "5min"})

    async def hyperliquid(ex) -> None:  # noqa: ANN001
        with pytest.raises(ccxt.ExchangeError, match="unknown variant"):  # HTTP 422
            await ex.publicPostInfo({"type": "notAType"})

    asyncio.run(_with_client("binance", emu.urls["binance"], binance))
    asyncio.run(_with_client("bybit", emu.urls["bybit"], bybit))
    asyncio.run(_with_client("hyperliquid", emu.urls["hyperliquid"], hyperliquid))
    time.sleep(0.05)
    log = emu.log_text()
    assert "WARNING" in log and "unknown path: GET /fapi/v1/ticker/24hr" in log
    assert "unknown info type: 'notAType'" in log


# -- one venue down -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_venue_left_out_is_down_alone_and_sigint_stops_quickly(tmp_path: Path) -> None:
    running = _start(tmp_path, "binance,hyperliquid")
    try:
        assert set(running.urls) == {"binance", "hyperliquid"}

        async def run() -> None:
            bybit = _client("bybit", f"http://127.0.0.1:{_closed_port()}")
            try:
                with pytest.raises(ccxt.NetworkError):  # connection refused -> ExchangeNotAvailable
                    await bybit.load_markets()
            finally:
                await bybit.close()
            for venue, symbol in (("binance", "BTC/USDT:USDT"), ("hyperliquid", "BTC/USDC:USDC")):
                ex = _client(venue, running.urls[venue])
                try:
                    assert symbol in await ex.load_markets()
                    assert (await ex.fetch_funding_rates([symbol]))[symbol]["fundingRate"] is not None
                finally:
                    await ex.close()

        asyncio.run(run())
    finally:
        elapsed = _stop(running.proc, signal.SIGINT)
    assert running.proc.returncode == 0
    assert elapsed < 1.0, f"emulator took {elapsed:.2f}s to stop"
    assert not any(r["venue"] == "BYBIT" for r in load_ground_truth(running.ground_truth))


def test_sigterm_stops_within_a_second_even_with_open_client_connections(tmp_path: Path) -> None:
    running = _start(tmp_path, "bybit")
    ex = _client("bybit", running.urls["bybit"])
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ex.load_markets())  # leaves a keep-alive connection open
        elapsed = _stop(running.proc, signal.SIGTERM)
        assert running.proc.returncode == 0 and elapsed < 1.0, elapsed
    finally:
        _stop(running.proc)
        loop.run_until_complete(ex.close())
        loop.close()
