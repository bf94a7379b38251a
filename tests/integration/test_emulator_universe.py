"""The sandbox lists realistic universes by default (`emulator/universe.py`): as many perpetuals per
venue as the real ones list, in the real symbol forms, every one of them served by the bulk
endpoints; listings and delistings triggered at run time reach the real ccxt clients; a
market-wide liquidation cascade pushes thousands of liquidations per second.

Counts are compared with what the real ccxt client makes of the emulator's listing (its market
list through the project's adapter) and with the emulator's own ground truth, never with numbers
written here, except the order of magnitude the venues really have (hundreds each, > 1,200 together).
"""

import asyncio
import re
import time
from collections import Counter

import aiohttp
import pytest

from emulator.ground_truth import load_ground_truth
from emulator.server import start_emulator
from venues import ADAPTERS

VENUES = ("binance", "bybit", "hyperliquid")
DAY_MS = 86_400_000
# The real symbol forms: Binance/Bybit BASEUSDT with an optional multiple (1000PEPEUSDT,
# 10000LADYSUSDT, 1000000MOGUSDT), Bybit's USDC perpetuals BTCPERP, Hyperliquid coin names (kPEPE).
FORMS = {"binance": r"(1000000|1000)?[A-Z][A-Z0-9]*USD[TC]", "bybit": r"((1000000|10000|1000)?[A-Z][A-Z0-9]*USDT|[A-Z]+PERP)",
         "hyperliquid": r"k?[A-Z][A-Z0-9]*"}


async def _get(s: aiohttp.ClientSession, url: str, body: dict | None = None) -> tuple[object, float]:
    """(answer, seconds to get it)."""
    t0 = time.perf_counter()
    r = await (s.post(url, json=body) if body is not None else s.get(url))
    data = await r.json(content_type=None)
    return data, time.perf_counter() - t0


async def _served(gt) -> dict:
    emu = await start_emulator(venues=VENUES, ground_truth=gt)
    out: dict = {"times": {}, "markets": {}}
    try:
        for venue in VENUES:  # first: the answers below are then the last ones in the ground truth
            client = ADAPTERS[venue]().client(emu.urls[venue])
            try:
                out["markets"][venue] = await client.load_markets()
            finally:
                await client.close()
        async with aiohttp.ClientSession() as s:
            for name, venue, path, body in (
                ("exchange_info", "binance", "/fapi/v1/exchangeInfo", None),
                ("premium_index", "binance", "/fapi/v1/premiumIndex", None),
                ("funding_info", "binance", "/fapi/v1/fundingInfo", None),
                ("instruments", "bybit", "/v5/market/instruments-info?category=linear&limit=1000", None),
                ("tickers", "bybit", "/v5/market/tickers?category=linear", None),
                ("meta_and_ctxs", "hyperliquid", "/info", {"type": "metaAndAssetCtxs"}),
                ("predicted", "hyperliquid", "/info", {"type": "predictedFundings"}),
            ):
                await _get(s, emu.urls[venue] + path, body)  # the first answer builds the listing's caches
                out[name], out["times"][name] = await _get(s, emu.urls[venue] + path, body)
            out["universe"] = {v: (await _get(s, emu.urls[v] + "/_emulator/universe"))[0] for v in VENUES}
        return out
    finally:
        await emu.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict:
    gt = tmp_path_factory.mktemp("universe") / "gt.jsonl"
    out = asyncio.run(_served(gt))
    out["truth"] = load_ground_truth(gt)
    return out


def test_ccxt_counts_equal_the_ground_truth_of_trading_perpetuals(served):
    """The perpetuals the project collects on each venue (ccxt's markets through the adapter) are exactly
    the trading perpetuals the emulator's ground truth lists, and there are as many as on the venues."""
    counts = {}
    for venue in VENUES:
        perps = ADAPTERS[venue]().perpetuals(served["markets"][venue])
        rows = served["universe"][venue]["perpetuals"]
        trading = {r["symbol"] for r in rows if r["status"] == "trading"}
        assert {m["id"] if venue != "hyperliquid" else m["baseName"] for m in perps.values()} == trading, venue
        counts[venue] = len(perps)
    records = [r for r in served["truth"] if r["kind"] == "instrument" and r["endpoint"] == "/fapi/v1/exchangeInfo"]
    assert counts["binance"] == len({r["raw_symbol"] for r in records
                                     if r["status"] == "TRADING" and r["contract_type"] == "PERPETUAL"})
    records = [r for r in served["truth"] if r["kind"] == "instrument" and r["endpoint"] == "metaAndAssetCtxs"]
    assert counts["hyperliquid"] == len({r["raw_symbol"] for r in records})
    assert counts["binance"] >= 500 and counts["bybit"] >= 500 and counts["hyperliquid"] >= 180, counts
    assert sum(counts.values()) > 1200, counts
    # what must not count is there too, as on the venues: settling / not-trading-yet / dated / delisted
    binance_status = Counter(s["status"] for s in served["exchange_info"]["symbols"])
    assert binance_status["SETTLING"] >= 1 and binance_status["PENDING_TRADING"] >= 1, binance_status
    assert any(s["contractType"] == "CURRENT_QUARTER" for s in served["exchange_info"]["symbols"])
    assert sum(1 for a in served["meta_and_ctxs"][0]["universe"] if a.get("isDelisted")) >= 20


def test_symbols_have_the_real_forms_and_varied_contract_data(served):
    symbols = {"binance": [s["symbol"] for s in served["exchange_info"]["symbols"] if s["contractType"] == "PERPETUAL"],
               "bybit": [i["symbol"] for i in served["instruments"]["result"]["list"] if i["contractType"] == "LinearPerpetual"],
               "hyperliquid": [a["name"] for a in served["meta_and_ctxs"][0]["universe"]]}
    for venue, names in symbols.items():
        bad = [n for n in names if not re.fullmatch(FORMS[venue], n)]
        assert not bad, (venue, bad[:5])
        assert len(set(names)) == len(names), venue
    assert any(n.startswith("1000") for n in symbols["binance"]) and any(n.startswith("k") for n in symbols["hyperliquid"])
    for s in served["exchange_info"]["symbols"]:  # baseAsset + quoteAsset is the symbol, multiple included
        if s["contractType"] == "PERPETUAL":
            assert s["baseAsset"] + s["quoteAsset"] == s["symbol"] == s["pair"]
    ticks = Counter(f["tickSize"] for s in served["exchange_info"]["symbols"] for f in s["filters"]
                    if f["filterType"] == "PRICE_FILTER")
    steps = Counter(i["lotSizeFilter"]["qtyStep"] for i in served["instruments"]["result"]["list"])
    assert len(ticks) >= 6 and len(steps) >= 4, (ticks, steps)
    # funding intervals: Binance lists the non-8h ones in fundingInfo, Bybit carries each in minutes
    assert {r["fundingIntervalHours"] for r in served["funding_info"]} >= {4, 1}
    assert {i["fundingInterval"] for i in served["instruments"]["result"]["list"]} >= {480, 240, 120, 60}
    # listing dates spread over years, some within the last four weeks
    now = served["exchange_info"]["serverTime"]
    onboard = [s["onboardDate"] for s in served["exchange_info"]["symbols"] if s["status"] == "TRADING"]
    launch = [int(i["launchTime"]) for i in served["instruments"]["result"]["list"]]
    for dates in (onboard, launch):
        assert max(dates) - min(dates) > 3 * 365 * DAY_MS
        assert sum(1 for d in dates if now - d < 28 * DAY_MS) >= 3


def test_bulk_endpoints_serve_every_listed_symbol_fast(served):
    trading = {s["symbol"] for s in served["exchange_info"]["symbols"] if s["status"] == "TRADING"}
    assert {r["symbol"] for r in served["premium_index"]} == trading
    assert {r["symbol"] for r in served["tickers"]["result"]["list"]} == {
        i["symbol"] for i in served["instruments"]["result"]["list"]}
    meta, ctxs = served["meta_and_ctxs"]
    assert len(meta["universe"]) == len(ctxs)
    active = {a["name"] for a in meta["universe"] if not a.get("isDelisted")}
    assert {row[0] for row in served["predicted"]} == active
    # every served row is in the ground truth with the value served
    truth = {(r["raw_symbol"], r["endpoint"]): r for r in served["truth"] if r["kind"] == "open_interest"}
    for row in served["tickers"]["result"]["list"]:
        assert truth[(row["symbol"], "/v5/market/tickers")]["open_interest"] == float(row["openInterest"])
    for item, ctx in zip(meta["universe"], ctxs, strict=True):
        if item["name"] in active:
            assert truth[(item["name"], "metaAndAssetCtxs")]["open_interest"] == float(ctx["openInterest"])
    # answer times on this loaded machine: well within a 60 s polling interval, and within ccxt's 10 s timeout
    print("bulk answer times (s):", {k: round(v, 3) for k, v in served["times"].items()})
    assert all(t < 3.0 for t in served["times"].values()), served["times"]


def test_listing_and_delisting_reach_ccxt(tmp_path):
    """A perpetual listed at run time is in ccxt's reloaded markets with its values in the ground truth;
    a delisted one leaves Binance's and Bybit's lists and is flagged isDelisted on Hyperliquid."""
    gt = tmp_path / "gt.jsonl"

    async def main():
        emu = await start_emulator(venues=VENUES, ground_truth=gt)
        clients = {v: ADAPTERS[v]().client(emu.urls[v]) for v in VENUES}
        try:
            before = {v: await c.load_markets() for v, c in clients.items()}
            new = {"binance": ("ZZNEWUSDT", "ZZNEW/USDT:USDT"), "bybit": ("1000ZZNEWUSDT", "1000ZZNEW/USDT:USDT"),
                   "hyperliquid": ("ZZNEW", "ZZNEW/USDC:USDC")}
            gone = {"binance": ("ETHUSDT", "ETH/USDT:USDT"), "bybit": ("ETHUSDT", "ETH/USDT:USDT"),
                    "hyperliquid": ("ETH", "ETH/USDC:USDC")}
            async with aiohttp.ClientSession() as s:
                bad = await s.post(emu.urls["binance"] + "/_emulator/list?symbol=zz-new")
                assert bad.status == 400 and "NEWCOINUSDT" in await bad.text()
                again = await s.post(emu.urls["bybit"] + "/_emulator/list?symbol=BTCUSDT")
                assert again.status == 400 and "already lists BTCUSDT" in await again.text()
                for v in VENUES:
                    assert (await s.post(emu.urls[v] + f"/_emulator/list?symbol={new[v][0]}")).status == 200
                    assert (await s.post(emu.urls[v] + f"/_emulator/delist?symbol={gone[v][0]}")).status == 200
            for v, c in clients.items():
                assert new[v][1] not in before[v]
                after = await c.load_markets(True)
                perps = ADAPTERS[v]().perpetuals(after)
                assert new[v][1] in perps and len(perps) == len(ADAPTERS[v]().perpetuals(before[v])), v
                assert gone[v][1] not in perps, v
                if v == "hyperliquid":
                    assert after[gone[v][1]]["active"] is False  # still listed, isDelisted
            oi = await clients["binance"].fetch_open_interest("ZZNEW/USDT:USDT")
            rates = await clients["bybit"].fetch_funding_rates()  # the whole category: ETHUSDT withheld
            assert "ETH/USDT:USDT" not in rates
            return oi, rates["1000ZZNEW/USDT:USDT"]
        finally:
            for c in clients.values():
                await c.close()
            await emu.close()

    oi, rate = asyncio.run(main())
    truth = load_ground_truth(gt)
    listed = [r for r in truth if r["kind"] == "listing"]
    assert {r["raw_symbol"] for r in listed} == {"ZZNEWUSDT", "1000ZZNEWUSDT", "ZZNEW"}
    served_oi = [r for r in truth if r["kind"] == "open_interest" and r["raw_symbol"] == "ZZNEWUSDT"][-1]
    assert oi["openInterestAmount"] == served_oi["open_interest"]
    served_rate = [r for r in truth if r["kind"] == "funding_rate" and r["raw_symbol"] == "1000ZZNEWUSDT"][-1]
    assert rate["fundingRate"] == served_rate["rate"] and served_rate["interval_minutes"] == 240
    withheld = {r["raw_symbol"] for r in truth if r["kind"] == "fault" and r["fault"] == "delisted"}
    assert {"ETHUSDT", "ETH"} <= withheld


def test_market_wide_cascade_pushes_thousands_per_second(tmp_path):
    """`POST /_emulator/cascade?symbol=all`: thousands of liquidations per second across hundreds of
    symbols, every one a ground-truth line; Binance's all-symbols stream gets the latest per symbol
    per second (the venue's rule), Bybit's allLiquidation topics every one."""
    gt = tmp_path / "gt.jsonl"
    count, seconds = 20_000, 4.0

    async def main():
        emu = await start_emulator(venues=["binance", "bybit"], ground_truth=gt, liquidation_rate=0.0)
        received = Counter()
        try:
            async with aiohttp.ClientSession() as s:
                binance = await s.ws_connect(emu.urls["binance"].replace("http", "ws") + "/ws/!forceOrder@arr")
                bybit = await s.ws_connect(emu.urls["bybit"].replace("http", "ws") + "/v5/public/linear")
                topics = [f"allLiquidation.{r['symbol']}" for r in
                          (await (await s.get(emu.urls["bybit"] + "/_emulator/universe")).json())["perpetuals"]]
                await bybit.send_json({"op": "subscribe", "req_id": "1", "args": topics})
                assert (await bybit.receive_json())["success"] is True

                async def read(ws, venue):
                    async for msg in ws:
                        data = msg.json()
                        received[venue] += len(data["data"]) if venue == "bybit" else 1

                readers = [asyncio.create_task(read(binance, "binance")), asyncio.create_task(read(bybit, "bybit"))]
                for v in ("binance", "bybit"):
                    await s.post(emu.urls[v] + f"/_emulator/cascade?symbol=all&count={count}&seconds={seconds}")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    stats = [await (await s.get(emu.urls[v] + "/_emulator/liquidations")).json() for v in ("binance", "bybit")]
                    if all(st["cascades_pending"] == 0 for st in stats) and received["bybit"] >= count:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.5)  # Binance pushes a symbol's second once it is over
                for t in readers:
                    t.cancel()
        finally:
            await emu.close()
        return received

    received = asyncio.run(main())
    truth = [r for r in load_ground_truth(gt) if r["kind"] == "liquidation"]
    cascades = [r for r in load_ground_truth(gt) if r["kind"] == "cascade"]
    assert len(cascades) == 2 and all(c["symbols"] > 500 for c in cascades)
    for venue in ("BINANCE", "BYBIT"):
        rows = [r for r in truth if r["venue"] == venue]
        span_s = (max(r["ts_ms"] for r in rows) - min(r["ts_ms"] for r in rows)) / 1000
        symbols = {r["raw_symbol"] for r in rows}
        print(f"{venue}: {len(rows)} pushed over {span_s:.1f} s ({len(rows) / span_s:.0f}/s) across {len(symbols)} symbols")
        assert len(symbols) > 300
        per_second = Counter((r["raw_symbol"], r["ts_ms"] // 1000) for r in rows)
        if venue == "BINANCE":  # the latest per symbol per second: hundreds per second
            assert max(per_second.values()) == 1 and len(rows) / span_s > 200
        else:  # every one of them
            assert len(rows) == count and len(rows) / span_s > 2000
        assert received[venue.lower()] == sum(r["connections"] for r in rows)
