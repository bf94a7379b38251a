"""Golden tests: real recorded venue payloads (`tests/fixtures/real`) through the project's real path.

Each payload is answered by a loopback venue (`recorded_venue.py`) to the real ccxt client that the
collector and the CLI build (`adapter.client`), normalized by the venue adapter (or the history
fetcher, or the liquidation stream parser for WebSocket frames), and compared field by field with
what a trader should get according to the payload's documented meaning. Some rows are then
written with the project's writer (`CatalogStore`) and loaded back through NautilusTrader's
`ParquetDataCatalog`. Every assertion names its evidence; `fixture_source` says where the
payload came from, so a failure points at the real answer that disagreed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import msgspec
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from venues import history
from storage.store import CatalogStore
from venues import adapter
from venues.binance import adapter as binance
from venues.bybit.schemas import BybitOpenInterest, one_side
from venues.schemas import decode
from venues.binance.liquidations import force_orders as binance_force_orders
from venues.bybit.liquidations import all_liquidation as bybit_all_liquidation
from messages.events import FundingRate, Liquidation, OpenInterest
from messages.nautilus import FundingRateInfo, query_funding_rates
from messages.nautilus import Liquidation as NautilusLiquidation
from messages.nautilus import OpenInterest as NautilusOpenInterest
from tests.fixtures.real import load, source
from tests.golden.recorded_venue import RecordedVenue

MS = 1_000_000
MARKETS = {  # what ccxt's load_markets asks for (listings recorded alongside; not the subject here)
    "binance": {("GET", "/fapi/v1/exchangeInfo"): [load("binance", "exchange_info")]},
    "bybit": {("GET", "/v5/market/instruments-info"): [load("bybit", "instruments_info_linear")]},
    "hyperliquid": {("POST", "/info spotMeta"): [load("hyperliquid", "markets_spot_meta")],
                    ("POST", "/info metaAndAssetCtxs"): [load("hyperliquid", "meta_and_asset_ctxs")]},
}


def fixture_source(venue: str, name: str) -> str:
    s = source(venue, name)
    return f"{venue}/{name} ({s['kind']}: {s.get('repository') or s.get('url')} {s.get('path', '')})"


def at_venue(venue: str, answers: dict, work: Callable[..., Awaitable[Any]]) -> tuple[Any, RecordedVenue]:
    """Run `work(adapter, client, markets)` against a loopback venue answering `answers`."""

    async def run() -> tuple[Any, RecordedVenue]:
        server = await RecordedVenue({**MARKETS[venue], **answers}).start()
        ad = adapter(venue)
        client = ad.client(server.url)
        try:
            markets = await client.load_markets()
            return await work(ad, client, markets), server
        finally:
            await client.close()
            await server.close()

    return asyncio.run(run())


def received_between(event: Any, before: int, after: int) -> Any:
    """The event with ts_recv checked (the receive time is ours, not the venue's) and fixed to 0."""
    assert before <= event.ts_recv <= after, (event.ts_recv, before, after)
    return msgspec.structs.replace(event, ts_recv=0)


# -- Binance --------------------------------------------------------------------------------------


def test_binance_open_interest_in_base_units_and_its_usd_value() -> None:
    oi, pi = load("binance", "open_interest"), load("binance", "premium_index")
    answers = {("GET", "/fapi/v1/openInterest"): [oi], ("GET", "/fapi/v1/premiumIndex"): [pi]}
    before = time.time_ns()
    events, server = at_venue("binance", answers, lambda ad, c, m: ad.fetch_open_interest(c, [m["BTC/USDT:USDT"]]))
    after = time.time_ns()
    assert server.asked("/fapi/v1/openInterest") == [{"symbol": "BTCUSDT"}]
    # Binance docs (Open Interest): "openInterest": base asset quantity of open contracts, "time": ms;
    # no USD value, so it is OI x markPrice of premiumIndex fetched in the same poll (README units registry)
    expected = OpenInterest(
        venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE",
        ts_event=1589437530011 * MS, ts_recv=0,
        open_interest=10659.509, open_interest_value=10659.509 * 11793.63104562,
    )
    assert [received_between(e, before, after) for e in events] == [expected], fixture_source("binance", "open_interest")


def test_binance_funding_rate_interval_and_next_settlement(monkeypatch) -> None:
    # A host booted 5 s ago: the adapter's monotonic clock reads 5 s. The first poll must still ask
    # fundingInfo (the adapter's own module only: the event loop keeps the real clock).
    monkeypatch.setattr(binance, "time", SimpleNamespace(monotonic=lambda: 5.0))
    pi = load("binance", "premium_index")
    answers = {
        # premiumIndex without `symbol` answers the list of the same objects (Binance docs: Mark Price)
        ("GET", "/fapi/v1/premiumIndex"): [[pi]],
        ("GET", "/fapi/v1/fundingInfo"): [load("binance", "funding_info")],
    }
    before = time.time_ns()
    events, server = at_venue("binance", answers, lambda ad, c, m: ad.fetch_funding(c, [m["BTC/USDT:USDT"]]))
    after = time.time_ns()
    assert len(server.asked("/fapi/v1/fundingInfo")) == 1, "the first funding poll of a fresh host fetches fundingInfo"
    # Binance docs (Mark Price): lastFundingRate = the current period's rate, settled at nextFundingTime;
    # "time" = the answer's time. fundingInfo lists only adjusted symbols: BTCUSDT is not in the live
    # list (4 h and 8 h symbols only), so its interval is the default 8 h.
    expected = FundingRate(
        venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE",
        ts_event=1597370495002 * MS, ts_recv=0, rate=0.00038246, interval_minutes=480,
        next_funding_ns=1597392000000 * MS, predicted_rate=None, mark_price=11793.63104562,
        index_price=11781.80495970, settled=False,
    )
    assert [received_between(e, before, after) for e in events] == [expected], fixture_source("binance", "premium_index")


def test_binance_funding_info_intervals_are_read_as_hours() -> None:
    # the live fundingInfo answer: fundingIntervalHours 4 and 8 -> 240 and 480 minutes, in the table
    # fetch_funding consults (ccxt keys symbols it has no market for by the venue's id)
    async def intervals(ad, client, markets):  # noqa: ANN001, ANN202
        await ad._refresh_intervals(client)  # noqa: SLF001 - the adapter's own parse of the answer
        return ad._intervals  # noqa: SLF001

    got, _ = at_venue("binance", {("GET", "/fapi/v1/fundingInfo"): [load("binance", "funding_info")]}, intervals)
    hours = {row["symbol"]: row["fundingIntervalHours"] for row in load("binance", "funding_info")}
    assert got == {s: h * 60 for s, h in hours.items()}, \
        fixture_source("binance", "funding_info")


def test_binance_open_interest_history(monkeypatch) -> None:
    rows = load("binance", "open_interest_hist")
    last_ms = int(rows[-1]["timestamp"])
    monkeypatch.setattr(history, "_now_ms", lambda: last_ms + 60_000)  # the rows' own era (30-day retention)
    answers = {("GET", "/futures/data/openInterestHist"): [rows]}
    start, end = int(rows[0]["timestamp"]) * MS, last_ms * MS

    async def work(ad, client, markets):  # noqa: ANN001, ANN202
        return await history.fetch_open_interest_history(ad, client, markets["BTC/USDT:USDT"], start, end, "5m")

    events, server = at_venue("binance", answers, work)
    assert server.asked("/futures/data/openInterestHist")[0]["period"] == "5m"
    # Binance docs (Open Interest Statistics): sumOpenInterest = total OI in base asset,
    # sumOpenInterestValue = its value in USDT, timestamp = the 5-minute bucket
    got = [(e.instrument_id, e.ts_event, e.open_interest, e.open_interest_value) for e in events]
    assert got == [("BTCUSDT-PERP.BINANCE", int(r["timestamp"]) * MS, float(r["sumOpenInterest"]),
                    float(r["sumOpenInterestValue"])) for r in rows], fixture_source("binance", "open_interest_hist")


def test_binance_settled_funding_history(monkeypatch) -> None:
    rows = load("binance", "funding_rate_history")
    monkeypatch.setattr(history, "_now_ms", lambda: rows[-1]["fundingTime"] + 60_000)
    start, end = rows[0]["fundingTime"] * MS, rows[-1]["fundingTime"] * MS

    async def work(ad, client, markets):  # noqa: ANN001, ANN202
        return await history.fetch_funding_history(ad, client, markets["BTC/USDT:USDT"], start, end)

    events, _ = at_venue("binance", {("GET", "/fapi/v1/fundingRate"): [rows]}, work)
    # Binance docs (Get Funding Rate History): fundingRate settled at fundingTime; rows 8 h apart ->
    # 480-minute periods; this example has no markPrice
    assert [(e.ts_event, e.rate, e.interval_minutes, e.next_funding_ns, e.mark_price, e.settled) for e in events] == [
        (r["fundingTime"] * MS, float(r["fundingRate"]), 480, None, None, True) for r in rows
    ], fixture_source("binance", "funding_rate_history")


def test_binance_force_order_frame() -> None:
    frame = load("binance", "force_order")
    events, skipped = binance_force_orders(frame, {"BTCUSDT": ("BTC/USDT:USDT", "BTCUSDT-PERP.BINANCE")}, 1)
    # Binance docs (Liquidation Order Streams): "S": SELL = the forced order sells, i.e. a LONG
    # position was liquidated; "z" filled quantity, "ap" average price, "T" trade time (ms)
    assert skipped == []
    assert events == [Liquidation(
        venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=1568014460893 * MS,
        ts_recv=1, side="LONG", quantity=0.014, price=9910.12345678, value=0.014 * 9910.12345678,
    )], fixture_source("binance", "force_order")


# -- Bybit ----------------------------------------------------------------------------------------


def test_bybit_ticker_before_the_change_is_two_sided_and_halved() -> None:
    tickers = load("bybit", "tickers_2024_11_04")
    answers = {("GET", "/v5/market/tickers"): [tickers]}

    async def work(ad, client, markets):  # noqa: ANN001, ANN202
        m = [markets["BTC/USDT:USDT"]]
        return await ad.fetch_open_interest(client, m) + await ad.fetch_funding(client, m)

    before = time.time_ns()
    events, _ = at_venue("bybit", answers, work)
    after = time.time_ns()
    oi, funding = (received_between(e, before, after) for e in events)
    # Bybit docs (open-interest.mdx since 2023-11-14): openInterest "is the sum of both sides"; the
    # 2026-05-28 announcement calls that the method in use until 2026-06-11 (README units registry).
    # One side = half, on this 2024 row too; openInterestValue = openInterest x markPrice, halved alike.
    assert oi == OpenInterest(
        venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=1730729903941 * MS,
        ts_recv=0, open_interest=69655.813 / 2, open_interest_value=4781864596.87 / 2,
    ), fixture_source("bybit", "tickers_2024_11_04")
    assert math.isclose(69655.813 * 68649.90, 4781864596.87, rel_tol=1e-6)  # the value is OI x mark: same sides
    # tickers: fundingRate is the rate settled at nextFundingTime; the interval is the instrument's
    # fundingInterval (minutes, instruments-info); Bybit publishes no separate prediction
    assert funding == FundingRate(
        venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=1730729903941 * MS,
        ts_recv=0, rate=0.0001, interval_minutes=480, next_funding_ns=1730736000000 * MS, predicted_rate=None,
        mark_price=68649.90, index_price=68650.75, settled=False,
    ), fixture_source("bybit", "tickers_2024_11_04")


def test_bybit_open_interest_history_row_before_the_change_is_halved() -> None:
    page = load("bybit", "open_interest_2025_02_16")
    # The page after the last one is not recorded: answered with no rows and no cursor, which ends
    # the walk (unverified: what Bybit answers to that cursor).
    end_of_pages = {**page, "result": {**page["result"], "list": [], "nextPageCursor": ""}}
    kline = load("bybit", "mark_price_kline")
    answers = {("GET", "/v5/market/open-interest"): [page, end_of_pages],
               ("GET", "/v5/market/mark-price-kline"): [kline]}
    ts = int(page["result"]["list"][0]["timestamp"])

    async def work(ad, client, markets):  # noqa: ANN001, ANN202
        return await history.fetch_open_interest_history(ad, client, markets["BTC/USDT:USDT"], ts * MS, ts * MS, "1h")

    events, server = at_venue("bybit", answers, work)
    assert server.asked("/v5/market/open-interest")[0]["intervalTime"] == "1h"
    # 62,129.455 BTC two-sided (2025, before the change) -> 31,064.7275 one side; USD value = one
    # side x the mark price at the bucket (the nearest earlier mark candle's open: the only one recorded)
    mark = float(kline["result"]["list"][0][1])
    assert [(e.ts_event, e.open_interest, e.open_interest_value) for e in events] == [
        (ts * MS, 62129.455 / 2, 62129.455 / 2 * mark)], fixture_source("bybit", "open_interest_2025_02_16")


def test_bybit_history_rows_before_the_change_carry_both_figures() -> None:
    # The docs example of the commit that added singleOpenInterest: rows dated 2026-06-05..09, before
    # the change, with openInterest = 2 x singleOpenInterest (to the unit). Evidence for the registry,
    # and what the normalizer takes from such a row.
    rows = load("bybit", "open_interest_history_2026_06")["result"]["list"]
    assert all(int(r["timestamp"]) < 1_781_136_000_000 for r in rows)  # 2026-06-11T00:00Z
    for r in rows:
        assert abs(float(r["openInterest"]) - 2 * float(r["singleOpenInterest"])) <= 1, r
        row = decode(r, BybitOpenInterest)
        assert one_side(row.single_open_interest, row.open_interest) == float(r["singleOpenInterest"]), \
            fixture_source("bybit", "open_interest_history_2026_06")


def test_bybit_settled_funding_history() -> None:
    page = load("bybit", "funding_history")
    rows = page["result"]["list"]  # newest first
    times = sorted(int(r["fundingRateTimestamp"]) for r in rows)

    async def work(ad, client, markets):  # noqa: ANN001, ANN202
        return await history.fetch_funding_history(ad, client, markets["BTC/USDT:USDT"], times[0] * MS, times[-1] * MS)

    events, _ = at_venue("bybit", {("GET", "/v5/market/funding/history"): [page]}, work)
    # Bybit docs (history-fund-rate): fundingRate settled at fundingRateTimestamp; 8 h apart -> 480 min
    rate = {int(r["fundingRateTimestamp"]): float(r["fundingRate"]) for r in rows}
    assert [(e.instrument_id, e.ts_event, e.rate, e.interval_minutes, e.mark_price, e.settled) for e in events] == [
        ("BTCUSDT-LINEAR.BYBIT", t * MS, rate[t], 480, None, True) for t in times], fixture_source("bybit", "funding_history")


def test_bybit_all_liquidation_frame() -> None:
    frame = load("bybit", "all_liquidation")
    events, skipped = bybit_all_liquidation(frame, {"ROSEUSDT": ("ROSE/USDT:USDT", "ROSEUSDT-LINEAR.BYBIT")}, 1)
    # Bybit docs (all-liquidation): "S" = position side, "When you receive a Buy update, this means that
    # a long position has been liquidated": Sell = a SHORT; "v" size, "p" bankruptcy price, "T" time (ms)
    assert skipped == []
    assert events == [Liquidation(
        venue="BYBIT", symbol="ROSE/USDT:USDT", instrument_id="ROSEUSDT-LINEAR.BYBIT", ts_event=1739502302929 * MS,
        ts_recv=1, side="SHORT", quantity=20000.0, price=0.04499, value=20000.0 * 0.04499,
    )], fixture_source("bybit", "all_liquidation")


# -- Hyperliquid ----------------------------------------------------------------------------------


def test_hyperliquid_open_interest_funding_and_prediction() -> None:
    predicted = load("hyperliquid", "predicted_fundings")
    answers = {("POST", "/info predictedFundings"): [predicted]}

    async def work(ad, client, markets):  # noqa: ANN001, ANN202
        m = [markets["BTC/USDC:USDC"], markets["ETH/USDC:USDC"]]
        return await ad.fetch_open_interest(client, m), await ad.fetch_funding(client, m)

    (ois, fundings), _ = at_venue("hyperliquid", answers, work)
    universe, ctxs = load("hyperliquid", "meta_and_asset_ctxs")
    hl = {coin: dict(entries)["HlPerp"] for coin, entries in predicted}
    for i, coin in enumerate(("BTC", "ETH")):
        ctx, iid = ctxs[i], f"{coin}-USD-PERP.HYPERLIQUID"
        assert universe["universe"][i]["name"] == coin
        oi, fr = ois[i], fundings[i]
        # metaAndAssetCtxs: openInterest in coin units, markPx; no timestamp -> ts_event = receive time
        assert oi == OpenInterest(
            venue="HYPERLIQUID", symbol=f"{coin}/USDC:USDC", instrument_id=iid, ts_event=oi.ts_recv, ts_recv=oi.ts_recv,
            open_interest=float(ctx["openInterest"]), open_interest_value=float(ctx["openInterest"]) * float(ctx["markPx"]),
        ), fixture_source("hyperliquid", "meta_and_asset_ctxs")
        # `funding` = the current hourly rate; predictedFundings "HlPerp" = Hyperliquid's own prediction of
        # the next settlement, its time and interval (fundingIntervalHours 1); oraclePx is the index
        assert fr == FundingRate(
            venue="HYPERLIQUID", symbol=f"{coin}/USDC:USDC", instrument_id=iid, ts_event=fr.ts_recv, ts_recv=fr.ts_recv,
            rate=float(ctx["funding"]), interval_minutes=60, next_funding_ns=hl[coin]["nextFundingTime"] * MS,
            predicted_rate=float(hl[coin]["fundingRate"]), mark_price=float(ctx["markPx"]),
            index_price=float(ctx["oraclePx"]), settled=False,
        ), fixture_source("hyperliquid", "predicted_fundings")
    assert fundings[1].predicted_rate != fundings[1].rate  # ETH: the prediction is not the current rate


def test_hyperliquid_settled_funding_history() -> None:
    rows = load("hyperliquid", "funding_history")
    start, end = rows[0]["time"] * MS, rows[-1]["time"] * MS

    async def work(ad, client, markets):  # noqa: ANN001, ANN202
        return await history.fetch_funding_history(ad, client, markets["BTC/USDC:USDC"], start, end)

    events, server = at_venue("hyperliquid", {("POST", "/info fundingHistory"): [rows]}, work)
    assert server.asked("/info fundingHistory")[0]["coin"] == "BTC"
    # Hyperliquid docs (fundingHistory): fundingRate settled at `time`, hourly
    assert [(e.instrument_id, e.ts_event, e.rate, e.interval_minutes, e.settled) for e in events] == [
        ("BTC-USD-PERP.HYPERLIQUID", r["time"] * MS, float(r["fundingRate"]), 60, True) for r in rows
    ], fixture_source("hyperliquid", "funding_history")


# -- into the catalog -----------------------------------------------------------------------------


def test_golden_rows_load_from_a_real_catalog(tmp_path) -> None:
    """The writer stores what the payloads gave; ParquetDataCatalog returns every field."""
    oi = OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE",
                      ts_event=1589437530011 * MS, ts_recv=1589437530100 * MS,
                      open_interest=10659.509, open_interest_value=10659.509 * 11793.63104562)
    ctx = load("hyperliquid", "meta_and_asset_ctxs")[1][1]
    hl = dict(load("hyperliquid", "predicted_fundings")[1][1])["HlPerp"]
    t = 1754467200000 * MS
    funding = FundingRate(venue="HYPERLIQUID", symbol="ETH/USDC:USDC", instrument_id="ETH-USD-PERP.HYPERLIQUID",
                          ts_event=t, ts_recv=t, rate=float(ctx["funding"]), interval_minutes=60,
                          next_funding_ns=hl["nextFundingTime"] * MS, predicted_rate=float(hl["fundingRate"]),
                          mark_price=float(ctx["markPx"]), index_price=float(ctx["oraclePx"]), settled=False)
    liq = binance_force_orders(load("binance", "force_order"), {"BTCUSDT": ("BTC/USDT:USDT", "BTCUSDT-PERP.BINANCE")},
                               1568014460900 * MS)[0][0]
    CatalogStore(tmp_path, durable=False).write([oi, funding, liq])

    catalog = ParquetDataCatalog(str(tmp_path))
    [row] = [r.data for r in catalog.query(NautilusOpenInterest)]
    assert (str(row.instrument_id), row.ts_event, row.ts_init, row.open_interest, row.open_interest_value) == (
        oi.instrument_id, oi.ts_event, oi.ts_event, oi.open_interest, oi.open_interest_value)
    [update] = query_funding_rates(catalog)
    assert (str(update.instrument_id), update.ts_event, update.ts_init, str(update.rate), update.interval,
            update.next_funding_ns) == (funding.instrument_id, t, t, ctx["funding"], 60, funding.next_funding_ns)
    [info] = [r.data for r in catalog.query(FundingRateInfo)]
    assert (info.rate, info.interval_minutes, info.next_funding_ns, info.predicted_rate, info.mark_price,
            info.index_price, info.settled) == (funding.rate, 60, funding.next_funding_ns, funding.predicted_rate,
                                                funding.mark_price, funding.index_price, False)
    [stored] = [r.data for r in catalog.query(NautilusLiquidation)]
    assert (str(stored.instrument_id), stored.ts_event, stored.side, stored.quantity, stored.price, stored.value) == (
        liq.instrument_id, liq.ts_event, "LONG", 0.014, 9910.12345678, 0.014 * 9910.12345678)
    assert stored.ts_event <= stored.ts_init < stored.ts_event + MS  # sub-ms offset keeps same-ms liquidations apart
