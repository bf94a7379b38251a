"""`symbols: all` on real listing payloads: the adapter's `collectable` keeps exactly the perpetuals
the venue lists and trades, by each venue's documented fields (`tests/fixtures/real/`), through
the real ccxt client loading its markets from the replay emulator."""

import asyncio

from tests.fixtures import real
from tests.nautilus.listings import binance_answers, bybit_answers, serve
from venues import ADAPTERS


async def _collectable(tmp_path, venue: str, answers: list, ts_ns: int, listed: set | None = None) -> set[str]:
    """The raw symbols `symbols: all` collects (`listed`, if given, gets every ccxt market's)."""
    replay = await serve(tmp_path / "recording", venue, answers, ts_ns)
    adapter = ADAPTERS[venue]()
    client = adapter.client(replay.urls[venue])
    try:
        markets = await client.load_markets()
    finally:
        await client.close()
        await replay.close()
    if listed is not None:
        listed.update(adapter.raw_symbol(m) for m in markets.values())
    return {adapter.raw_symbol(m) for m in adapter.collectable(markets).values()}


def test_binance_all_is_every_perpetual_in_trading(tmp_path):
    answers, ts = binance_answers()
    symbols = real.load("binance", "exchange_info")["symbols"]
    expected = {s["symbol"] for s in symbols if s["contractType"] == "PERPETUAL" and s["status"] == "TRADING"}
    assert expected == {"BTCUSDT", "ETHUSDT"}, real.source("binance", "exchange_info")  # the quarterly is not
    assert asyncio.run(_collectable(tmp_path, "binance", answers, ts)) == expected


def test_bybit_all_is_every_usdt_perpetual_in_trading(tmp_path):
    answers, ts = bybit_answers()
    items = real.load("bybit", "instruments_info_linear")["result"]["list"] + \
        real.load("bybit", "instruments_info_prelaunch")["result"]["list"]
    expected = {i["symbol"] for i in items
                if i["contractType"] == "LinearPerpetual" and i["status"] == "Trading" and i["settleCoin"] == "USDT"}
    assert expected == {"BTCUSDT"} and len(items) > 1, real.source("bybit", "instruments_info_prelaunch")  # PreLaunch is not
    assert asyncio.run(_collectable(tmp_path, "bybit", answers, ts)) == expected


def test_hyperliquid_all_is_the_perp_universe_without_delisted_coins(tmp_path):
    payload = real.load("hyperliquid", "meta_and_asset_ctxs")
    spot = real.load("hyperliquid", "markets_spot_meta")
    universe = [*payload[0]["universe"], {"name": "GONE", "szDecimals": 1, "maxLeverage": 3, "isDelisted": True}]
    ctxs = [*payload[1], payload[1][0]]  # the delisted coin keeps a context, as on the venue
    answers = [("POST", "/info", {"type": "spotMeta"}, spot), ("POST", "/info", {"type": "metaAndAssetCtxs"}, [{**payload[0], "universe": universe}, ctxs])]
    listed: set[str] = set()
    got = asyncio.run(_collectable(tmp_path, "hyperliquid", answers, 1_735_689_600_000_000_000, listed))
    assert "GONE" in listed  # ccxt lists it; `all` does not collect it
    assert got == {i["name"] for i in payload[0]["universe"]} and "GONE" not in got
