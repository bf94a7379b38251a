"""The venues' payload structs (`venues/<venue>/schemas.py`) against real recorded answers
(`tests/fixtures/real/`): every field the project reads comes out as the venue wrote it, and an
item that does not fit is refused with a reason naming the field and the value."""

import importlib
import inspect
import json

import msgspec
import pytest

from venues import VENUE_NAMES
from venues.binance.schemas import (BinanceFundingInfo, BinanceFundingRate, BinanceLotSize, BinanceMinNotional,
                                    BinanceOpenInterest, BinanceOpenInterestHist, BinancePremiumIndex,
                                    BinancePriceFilter, BinanceSymbol)
from venues.bybit.schemas import (BybitFundingHistory, BybitInstrument, BybitInstrumentFunding,
                                  BybitMarkPriceKlinePage, BybitOpenInterestPage, BybitTicker, one_side)
from venues.hyperliquid.adapter import predicted_by_coin
from venues.hyperliquid.schemas import (HyperliquidAssetCtx, HyperliquidFundingHistory, HyperliquidPerp,
                                        HyperliquidPredictedFunding)
from venues.schemas import MalformedItem, Schema, decode
from tests.fixtures.real import load

def read(raw, schema):
    return decode(raw, schema)


def spoiled(raw, **changes):
    """A copy of a venue item with fields replaced (None: removed)."""
    item = json.loads(json.dumps(raw))
    for key, value in changes.items():
        if value is None:
            item.pop(key)
        else:
            item[key] = value
    return item


# -- Binance ----------------------------------------------------------------------------------------


def test_binance_open_interest_and_premium_index():
    raw = load("binance", "open_interest")
    oi = read(raw, BinanceOpenInterest)
    assert (oi.symbol, oi.open_interest, oi.time) == ("BTCUSDT", 10659.509, 1589437530011)
    raw = load("binance", "premium_index")
    pi = read(raw, BinancePremiumIndex)
    assert (pi.mark_price, pi.index_price, pi.last_funding_rate, pi.next_funding_time, pi.time) == (
        11793.63104562, 11781.80495970, 0.00038246, 1597392000000, 1597370495002)


def test_binance_funding_info_history_and_open_interest_statistics():
    rows = [read(r, BinanceFundingInfo) for r in load("binance", "funding_info")]
    assert {(r.symbol, r.funding_interval_hours) for r in rows} == {
        (r["symbol"], r["fundingIntervalHours"]) for r in load("binance", "funding_info")}
    raw = load("binance", "funding_rate_history")
    assert [(r.funding_time, r.funding_rate, r.mark_price) for r in (read(x, BinanceFundingRate) for x in raw)] == [
        (x["fundingTime"], float(x["fundingRate"]), None) for x in raw]
    raw = load("binance", "open_interest_hist")
    got = [read(x, BinanceOpenInterestHist) for x in raw]
    assert [(r.timestamp, r.sum_open_interest, r.sum_open_interest_value) for r in got] == [
        (int(x["timestamp"]), float(x["sumOpenInterest"]), float(x["sumOpenInterestValue"])) for x in raw]


def test_binance_exchange_info_symbol_keeps_numbers_as_written():
    item = load("binance", "exchange_info")["symbols"][0]
    symbol = read(item, BinanceSymbol)
    assert (symbol.base_asset, symbol.quote_asset, symbol.margin_asset) == (item["baseAsset"], item["quoteAsset"], item["marginAsset"])
    filters = {f["filterType"]: f for f in symbol.filters}
    price = read(filters["PRICE_FILTER"], BinancePriceFilter)
    lot = read(filters["LOT_SIZE"], BinanceLotSize)
    notional = read(filters["MIN_NOTIONAL"], BinanceMinNotional)
    assert (price.tick_size, price.min_price, price.max_price) == (
        filters["PRICE_FILTER"]["tickSize"], filters["PRICE_FILTER"]["minPrice"], filters["PRICE_FILTER"]["maxPrice"])
    assert (lot.step_size, lot.min_qty, lot.max_qty, notional.notional) == (
        filters["LOT_SIZE"]["stepSize"], filters["LOT_SIZE"]["minQty"], filters["LOT_SIZE"]["maxQty"],
        filters["MIN_NOTIONAL"]["notional"])


# -- Bybit ------------------------------------------------------------------------------------------


def test_bybit_ticker_two_sided_figures_and_funding():
    raw = load("bybit", "tickers_2024_11_04")["result"]["list"][0]
    t = read(raw, BybitTicker)
    assert (t.open_interest, t.open_interest_value, t.single_open_interest) == (69655.813, 4781864596.87, None)
    assert one_side(t.single_open_interest, t.open_interest) == 69655.813 / 2  # README, units registry
    assert (t.funding_rate, t.next_funding_time, t.mark_price, t.index_price) == (0.0001, 1730736000000, 68649.90, 68650.75)


def test_bybit_instrument_and_its_funding_interval():
    raw = load("bybit", "instruments_info_linear")["result"]["list"][0]
    inst = read(raw, BybitInstrument)
    assert (inst.base_coin, inst.quote_coin, inst.settle_coin) == ("BTC", "USDT", "USDT")
    assert (inst.price_filter.tick_size, inst.lot_size_filter.qty_step, inst.lot_size_filter.max_order_qty) == (
        "0.10", "0.001", "1190.000")
    assert inst.lot_size_filter.min_notional_value == "5"
    assert read(raw, BybitInstrumentFunding).funding_interval == raw["fundingInterval"] == 480


def test_bybit_open_interest_pages_kline_and_funding_history():
    page = load("bybit", "open_interest_2025_02_16")
    got = read(page, BybitOpenInterestPage).result
    assert [(r.timestamp, r.open_interest) for r in got.rows] == [(1739725200000, 62129.455)]
    assert got.next_page_cursor == page["result"]["nextPageCursor"]
    rows = read(load("bybit", "open_interest_history_2026_06"), BybitOpenInterestPage).result.rows
    assert all(one_side(r.single_open_interest, r.open_interest) == r.single_open_interest for r in rows)
    kline = load("bybit", "mark_price_kline")["result"]["list"][0]
    [candle] = read(load("bybit", "mark_price_kline"), BybitMarkPriceKlinePage).result.rows
    assert (candle.start, candle.open, candle.close) == (int(kline[0]), float(kline[1]), float(kline[4]))
    raw = load("bybit", "funding_history")["result"]["list"]
    assert [(r.funding_rate_timestamp, r.funding_rate) for r in (read(x, BybitFundingHistory) for x in raw)] == [
        (int(x["fundingRateTimestamp"]), float(x["fundingRate"])) for x in raw]


# -- Hyperliquid ------------------------------------------------------------------------------------


def test_hyperliquid_asset_contexts_merged_with_their_universe_item():
    meta, ctxs = load("hyperliquid", "meta_and_asset_ctxs")
    for item, ctx in zip(meta["universe"], ctxs, strict=True):  # as ccxt merges them into `info`
        c = read({**item, **ctx}, HyperliquidAssetCtx)
        assert (c.name, c.open_interest, c.mark_px, c.funding, c.oracle_px) == (
            item["name"], float(ctx["openInterest"]), float(ctx["markPx"]), float(ctx["funding"]), float(ctx["oraclePx"]))


def test_hyperliquid_predictions_universe_and_funding_history():
    predicted = predicted_by_coin(load("hyperliquid", "predicted_fundings"))
    eth = read(predicted["ETH"], HyperliquidPredictedFunding)  # the "HlPerp" entry, not Binance's or Bybit's
    assert (eth.funding_rate, eth.next_funding_time, eth.funding_interval_hours) == (0.0000104019, 1754470800000, 1)
    perps = [read(x, HyperliquidPerp) for x in load("hyperliquid", "meta_sample")["universe"]]
    assert [(p.name, p.sz_decimals) for p in perps] == [("BTC", 5), ("ETH", 4), ("ATOM", 2)]
    raw = load("hyperliquid", "funding_history")
    assert [(r.time, r.funding_rate) for r in (read(x, HyperliquidFundingHistory) for x in raw)] == [
        (x["time"], float(x["fundingRate"])) for x in raw]


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "schema", "said"), [
    (spoiled(load("binance", "open_interest"), openInterest="NaN"), BinanceOpenInterest, "openInterest='NaN' is not a finite number"),
    (spoiled(load("binance", "open_interest"), openInterest="1e400"), BinanceOpenInterest, "openInterest='1e400'"),
    (spoiled(load("binance", "open_interest"), openInterest=None), BinanceOpenInterest, "openInterest missing"),
    (spoiled(load("binance", "premium_index"), markPrice={"unexpected": [1, 2]}), BinancePremiumIndex,
     "markPrice is not a number: {'unexpected': [1, 2]}"),
    (spoiled(load("binance", "premium_index"), lastFundingRate=True), BinancePremiumIndex, "lastFundingRate is not a number: True"),
    (spoiled(load("bybit", "tickers_2024_11_04")["result"]["list"][0], fundingRate=""), BybitTicker, "fundingRate is not a number: ''"),
    (spoiled(load("bybit", "instruments_info_linear")["result"]["list"][0], priceFilter={"tickSize": "0,10", "minPrice": "1",
                                                                                          "maxPrice": "2"}),
     BybitInstrument, "priceFilter.tickSize='0,10'"),
    (spoiled(load("hyperliquid", "meta_sample")["universe"][0], szDecimals="5"), HyperliquidPerp, "szDecimals is not an integer: '5'"),
    (spoiled(load("hyperliquid", "meta_sample")["universe"][0], szDecimals=17), HyperliquidPerp, "szDecimals=17: Expected `int` <= 16"),
    ("<html>busy</html>", BinanceOpenInterest, "the item is not an object: '<html>busy</html>'"),
])
def test_an_item_that_does_not_fit_is_refused_naming_the_field_and_the_value(raw, schema, said):
    with pytest.raises(MalformedItem) as err:
        decode(raw, schema)
    assert said in str(err.value), str(err.value)


def _structs_in(t) -> set[type]:
    """Struct types reachable from a msgspec type info (a page's rows, an item's filters)."""
    if isinstance(t, msgspec.inspect.StructType):
        return {t.cls}.union(*(_structs_in(f.type) for f in t.fields))
    inner = [getattr(t, a) for a in ("item_type", "value_type") if hasattr(t, a)] + list(getattr(t, "types", ()))
    return set().union(*(_structs_in(x) for x in inner))


def test_every_venue_schema_is_frozen_renamed_and_read_from_a_real_payload_here():
    schemas = {cls for venue in VENUE_NAMES
               for _, cls in inspect.getmembers(importlib.import_module(f"venues.{venue}.schemas"), inspect.isclass)
               if issubclass(cls, Schema) and cls is not Schema}
    assert schemas and all(cls.__struct_config__.frozen for cls in schemas)
    here = open(__file__).read()
    read_here = {cls for cls in schemas if f", {cls.__name__})" in here}  # `read(payload, Name)` above
    covered = set().union(*(_structs_in(msgspec.inspect.type_info(cls)) for cls in read_here))  # with their parts
    assert schemas <= covered, f"schemas without a real-payload test here: {sorted(c.__name__ for c in schemas - covered)}"
    assert msgspec.structs.fields(BinanceOpenInterest)[1].encode_name == "openInterest"  # `rename`: the venue's names
