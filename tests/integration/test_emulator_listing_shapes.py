"""The emulator's market listings have the real venues' shapes, so they cannot drift apart again.

Every key of a real recorded listing (`tests/fixtures/real/`) is in the emulator's answer to the
same request, with a value of the same JSON type, down to list items (a real item must fit one of
the emulator's items with the same `filterType` / `status` / `contractType`). The emulator may
carry fields an older recording lacks (the venues added them since). Then the cases the real
payloads show: tick sizes written with their trailing zero ("0.10"), Bybit's PreLaunch contract
listed only when asked for, Hyperliquid's delisted coins (`isDelisted`, `onlyIsolated`) kept in
the universe; and what the project makes of them through the real ccxt client.
"""

import asyncio

import aiohttp
import pytest

from venues import ADAPTERS
from emulator.server import start_emulator
from tests.fixtures import real

DISCRIMINATORS = ("filterType", "status", "contractType")


def misfits(real_value, emulated, path: str = "$") -> list[str]:
    """Where `real_value` does not fit `emulated` (missing key, other JSON type, no fitting item)."""
    if isinstance(real_value, dict):
        if not isinstance(emulated, dict):
            return [f"{path}: object in the real answer, {type(emulated).__name__} in the emulator's"]
        return [m for k, v in real_value.items()
                for m in ([f"{path}.{k}: missing in the emulator's answer"] if k not in emulated
                          else misfits(v, emulated[k], f"{path}.{k}"))]
    if isinstance(real_value, list):
        if not isinstance(emulated, list):
            return [f"{path}: array in the real answer, {type(emulated).__name__} in the emulator's"]
        out = []
        for i, item in enumerate(real_value):
            same_kind = [e for e in emulated if not isinstance(item, dict) or all(
                isinstance(e, dict) and e.get(k) == item[k] for k in DISCRIMINATORS if k in item)]
            if not same_kind:
                out.append(f"{path}[{i}]: no item of this kind in the emulator's answer")
            elif all(misfits(item, e, f"{path}[{i}]") for e in same_kind):
                out += min((misfits(item, e, f"{path}[{i}]") for e in same_kind), key=len)
        return out
    if type(real_value) is not type(emulated) and real_value is not None:
        return [f"{path}: {type(real_value).__name__} {real_value!r} in the real answer, "
                f"{type(emulated).__name__} {emulated!r} in the emulator's"]
    return []


async def _answers() -> dict:
    emu = await start_emulator(venues=["binance", "bybit", "hyperliquid"])
    try:
        async with aiohttp.ClientSession() as s:
            get = lambda venue, path: s.get(emu.urls[venue] + path)  # noqa: E731
            out = {
                "exchange_info": await (await get("binance", "/fapi/v1/exchangeInfo")).json(),
                "linear": await (await get("bybit", "/v5/market/instruments-info?category=linear&limit=1000")).json(),
                "prelaunch": await (await get("bybit", "/v5/market/instruments-info?category=linear&limit=1000&status=PreLaunch")).json(),
                "meta_and_ctxs": await (await s.post(emu.urls["hyperliquid"] + "/info", json={"type": "metaAndAssetCtxs"})).json(),
            }
        markets = {}
        for venue in ("binance", "bybit", "hyperliquid"):
            client = ADAPTERS[venue]().client(emu.urls[venue])
            try:
                markets[venue] = await client.load_markets()
            finally:
                await client.close()
        out["markets"] = markets
        return out
    finally:
        await emu.close()


@pytest.fixture(scope="module")
def served() -> dict:
    return asyncio.run(_answers())


@pytest.mark.parametrize(("venue", "name", "answer"), [
    ("binance", "exchange_info", "exchange_info"),
    ("bybit", "instruments_info_linear", "linear"),
    ("bybit", "instruments_info_prelaunch", "prelaunch"),
    ("hyperliquid", "meta_and_asset_ctxs", "meta_and_ctxs"),
])
def test_emulator_listing_has_the_real_keys_and_types(served, venue, name, answer):
    assert misfits(real.load(venue, name), served[answer]) == [], real.source(venue, name)


def test_tick_sizes_keep_their_written_precision(served):
    """Binance's and Bybit's real BTCUSDT tickSize is "0.10" (fixtures): a string with its zero."""
    binance = next(s for s in served["exchange_info"]["symbols"] if s["symbol"] == "BTCUSDT")
    assert next(f for f in binance["filters"] if f["filterType"] == "PRICE_FILTER")["tickSize"] == "0.10"
    bybit = next(i for i in served["linear"]["result"]["list"] if i["symbol"] == "BTCUSDT")
    assert bybit["priceFilter"]["tickSize"] == "0.10"


def test_bybit_prelaunch_is_listed_only_when_asked_for_and_never_collected(served):
    (pre,) = served["prelaunch"]["result"]["list"]
    assert pre["status"] == "PreLaunch" and pre["isPreListing"] is True and pre["preListingInfo"]["phases"]
    assert all(i["status"] == "Trading" for i in served["linear"]["result"]["list"])
    market = served["markets"]["bybit"]["PRELAUNCH/USDT:USDT"]
    assert market["active"] is False  # ccxt: active = (status == "Trading")
    assert "PRELAUNCH/USDT:USDT" not in ADAPTERS["bybit"]().perpetuals(served["markets"]["bybit"])


def test_hyperliquid_delisted_coins_stay_in_the_universe_and_are_never_collected(served):
    meta, ctxs = served["meta_and_ctxs"]
    assert len(meta["universe"]) == len(ctxs)  # contexts are index-aligned with the universe
    delisted = {a["name"] for a in meta["universe"] if a.get("isDelisted")}
    assert delisted and any(a.get("onlyIsolated") for a in meta["universe"] if a["name"] in delisted)
    markets = served["markets"]["hyperliquid"]
    assert {m["baseName"] for m in markets.values() if m["active"] is False} == delisted
    adapter = ADAPTERS["hyperliquid"]()
    perpetuals = adapter.perpetuals(markets)
    assert delisted.isdisjoint({m["baseName"] for m in perpetuals.values()})
    # Nautilus's rule for the price precision (6 - szDecimals), not ccxt's from the mark price
    for market in perpetuals.values():
        inst = adapter.instrument(market, 1_735_689_600_000_000_000)
        assert inst.price_precision == max(0, 6 - market["info"]["szDecimals"]), inst.instrument_id


def test_the_comparison_sees_a_drift():
    """A tick served as a JSON number, a missing key or no item of the real kind is reported."""
    real_item = real.load("bybit", "instruments_info_linear")
    drifted = {**real_item, "result": {**real_item["result"], "list": [
        {**real_item["result"]["list"][0], "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": 0.1}}]}}
    assert misfits(real_item, drifted) == [
        "$.result.list[0].priceFilter.tickSize: str '0.10' in the real answer, float 0.1 in the emulator's"]
    assert misfits({"a": {"b": 1}}, {"a": {}}) == ["$.a.b: missing in the emulator's answer"]
    assert misfits([{"status": "PreLaunch"}], [{"status": "Trading"}]) == ["$[0]: no item of this kind in the emulator's answer"]
