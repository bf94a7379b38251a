"""Our instrument definitions equal NautilusTrader 1.231's own, from the same real venue payload.

Each real listing payload (`tests/fixtures/real/<venue>/`) is served by the replay emulator on
127.0.0.1 (`emulator/replay.py`, from a recording written with `venues/recording.Recorder`), the
real ccxt client loads its markets from it, the venue adapter builds the `Instrument` events
(`venues/<venue>.py`), `CatalogStore` writes them and `ParquetDataCatalog.instruments()`
reads them back. That `CryptoPerpetual` is compared field by field with Nautilus's own parse of
the same payload:

- Binance: `BinanceFuturesInstrumentProvider._parse_instrument` run offline on the payload decoded
  with Nautilus's own `BinanceFuturesExchangeInfo` schema (what its provider does without keys);
- Bybit: Nautilus's own HTTP client (`nautilus_pyo3.BybitHttpClient`, Rust parser) asking the same
  replay server, so its parse sees the very bytes ccxt saw;
- Hyperliquid: its parser is Rust-only and its client cannot be pointed at another host, so the
  rules are re-derived (`venues/hyperliquid.py`) and checked here against what Nautilus's
  own Rust tests assert for its recorded sample, with every other field Nautilus's own default
  (a `nautilus_pyo3.CryptoPerpetual` built with only the arguments its parser passes).

Contracts that are not perpetuals (Binance quarterlies), not trading yet (Bybit PreLaunch) or
delisted (Hyperliquid `isDelisted`) get no definition: the project collects no data for them.
"""

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec
from nautilus_trader.adapters.binance.futures.providers import BinanceFuturesInstrumentProvider
from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesExchangeInfo
from nautilus_trader.adapters.binance.futures.schemas.wallet import BinanceFuturesCommissionRate
from nautilus_trader.adapters.binance.http.client import BinanceHttpClient
from nautilus_trader.common.component import LiveClock
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.core.datetime import millis_to_nanos
from nautilus_trader.model.instruments import CryptoFuture, CryptoPerpetual, instruments_from_pyo3
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from storage.store import CatalogStore
from venues.hyperliquid.adapter import instrument_definition as hyperliquid_definition
from tests.fixtures import real
from tests.nautilus.listings import binance_answers, bybit_answers, load_events, serve

# The fields of a CryptoPerpetual a trader's data must agree with: all but ts_event, ts_init and info
# (the README says how those differ).
FIELDS = ("id", "raw_symbol", "base_currency", "quote_currency", "settlement_currency", "is_inverse",
          "price_precision", "price_increment", "size_precision", "size_increment", "multiplier", "lot_size",
          "max_quantity", "min_quantity", "max_notional", "min_notional", "max_price", "min_price",
          "margin_init", "margin_maint", "maker_fee", "taker_fee", "tick_scheme_name")
T_HL = 1_735_689_600_000_000_000  # Hyperliquid answers carry no time: a fixed receive time for the recording


async def _our_instruments(tmp_path: Path, venue: str, answers: list, ts_ns: int) -> tuple[dict, list]:
    """(ccxt markets, our CryptoPerpetuals as the catalog gives them back) through the real path."""
    replay = await serve(tmp_path / "recording", venue, answers, ts_ns)
    try:
        markets, events = await load_events(replay.urls[venue], venue, ts_ns)
    finally:
        await replay.close()
    CatalogStore(tmp_path / "catalog").write(events)
    return markets, ParquetDataCatalog(str(tmp_path / "catalog")).instruments()


def _fields(instrument: CryptoPerpetual) -> dict:
    d = CryptoPerpetual.to_dict(instrument)
    return {k: d[k] for k in FIELDS}


def _assert_same(ours: list, theirs: list, source: dict) -> None:
    assert {i.id.value for i in ours} == {i.id.value for i in theirs}, source
    by_id = {i.id.value: i for i in theirs}
    for mine in ours:
        assert _fields(mine) == _fields(by_id[mine.id.value]), f"{mine.id} differs from Nautilus's parse of {source}"


# -- Binance ------------------------------------------------------------------------------------


def _nautilus_binance(payload: dict) -> list:
    """What NautilusTrader's Binance futures provider builds from exchangeInfo without API keys."""
    clock = LiveClock()
    http = BinanceHttpClient(clock=clock, api_key=None, api_secret=None, base_url="http://127.0.0.1:9")  # never called
    provider = BinanceFuturesInstrumentProvider(client=http, clock=clock)
    info = msgspec.json.Decoder(BinanceFuturesExchangeInfo).decode(msgspec.json.encode(payload))
    tier0 = provider._fee_rates[0]  # noqa: SLF001 - what load_all_async takes without keys
    for symbol in info.symbols:
        fee = BinanceFuturesCommissionRate(symbol=symbol.symbol, makerCommissionRate=tier0.maker,
                                           takerCommissionRate=tier0.taker)
        provider._parse_instrument(symbol_info=symbol, ts_event=millis_to_nanos(info.serverTime), fee=fee)  # noqa: SLF001
    return provider.list_all()


def test_binance_exchange_info_matches_nautilus(tmp_path):
    payload, source = real.load("binance", "exchange_info"), real.source("binance", "exchange_info")
    answers, ts = binance_answers()
    markets, ours = asyncio.run(_our_instruments(tmp_path, "binance", answers, ts))
    theirs = _nautilus_binance(payload)

    perpetuals = [i for i in theirs if isinstance(i, CryptoPerpetual)]
    _assert_same(ours, perpetuals, source)
    btc = next(i for i in ours if i.id.value == "BTCUSDT-PERP.BINANCE")
    # tickSize "0.10": precision 2, as Nautilus's Binance adapter and its quotes have it
    assert (btc.price_precision, str(btc.price_increment)) == (2, "0.10")
    assert (btc.margin_init, btc.margin_maint, btc.maker_fee, btc.taker_fee) == (1, 1, Decimal("0.0002"), Decimal("0.0005"))
    assert (btc.ts_event, btc.ts_init) == (ts, ts)  # the answer's receive time (Nautilus: serverTime, ms)
    # The quarterly is a CryptoFuture in Nautilus, not a perpetual: no definition from us.
    quarterly = next(i for i in theirs if i.raw_symbol.value == "BTCUSDT_220325")
    assert isinstance(quarterly, CryptoFuture) and markets["BTC/USDT:USDT-220325"]["future"]
    assert "BTCUSDT_220325" not in {i.raw_symbol.value for i in ours}


# -- Bybit --------------------------------------------------------------------------------------


async def _nautilus_bybit(url: str) -> list:
    client = nautilus_pyo3.BybitHttpClient(base_url=url, max_retries=0)
    return instruments_from_pyo3(await client.request_instruments(nautilus_pyo3.BybitProductType.LINEAR, None, None))


def test_bybit_instruments_info_matches_nautilus(tmp_path):
    source = real.source("bybit", "instruments_info_linear")
    answers, ts = bybit_answers()

    async def both() -> tuple:
        replay = await serve(tmp_path / "recording", "bybit", answers, ts)
        try:
            markets, events = await load_events(replay.urls["bybit"], "bybit", ts)
            theirs = await _nautilus_bybit(replay.urls["bybit"])  # the same server, the same bytes
        finally:
            await replay.close()
        return markets, events, theirs

    markets, events, theirs = asyncio.run(both())
    CatalogStore(tmp_path / "catalog").write(events)
    ours = ParquetDataCatalog(str(tmp_path / "catalog")).instruments()
    _assert_same(ours, theirs, source)
    (btc,) = ours
    assert (btc.price_precision, str(btc.price_increment), str(btc.max_quantity)) == (2, "0.10", "1190.000")
    assert (btc.margin_init, btc.maker_fee) == (Decimal("0.1"), Decimal("0.001"))
    # PreLaunch (pre-market, not yet a listed perpetual): ccxt lists it inactive, Nautilus does not
    # ask for it (instruments-info without status returns Trading only), we build nothing.
    assert markets["BIO/USDT:USDT"]["active"] is False
    assert "BIOUSDT" not in {i.raw_symbol.value for i in ours}


# -- Hyperliquid --------------------------------------------------------------------------------


def _nautilus_defaults(item: dict, ts: int) -> CryptoPerpetual:
    """A CryptoPerpetual built by Nautilus with only the arguments its Hyperliquid parser passes
    (`create_instrument_from_def`): everything else is Nautilus's own default."""
    d = hyperliquid_definition(item)  # the re-derived precision rule, checked separately below
    p = nautilus_pyo3
    inst = p.CryptoPerpetual(
        p.InstrumentId.from_str(f"{item['name']}-USD-PERP.HYPERLIQUID"), p.Symbol(item["name"]),
        p.Currency.from_str(item["name"]) if item["name"] in ("BTC", "ETH") else p.Currency(item["name"], 8, 0, item["name"], p.CurrencyType.CRYPTO),
        p.Currency.from_str("USD"), p.Currency.from_str("USDC"), False, d["price_precision"], d["size_precision"],
        p.Price.from_str(d["price_increment"]), p.Quantity.from_str(d["size_increment"]), ts, ts,
        min_notional=p.Money.from_str("10 USD"),
    )
    return instruments_from_pyo3([inst])[0]


def test_hyperliquid_precision_rule_matches_nautilus_own_tests():
    """Nautilus's Rust test `test_parse_perp_instruments_from_real_data` on its recorded sample:
    BTC-USD-PERP, base BTC, quote USD, settlement USDC, size decimals 5 / 4 / 2; its parser's rule
    (http/parse.rs): price decimals = max(0, 6 - szDecimals), tick 10^-decimals. ccxt instead
    derives the price precision from the current mark price (BTC: 0 or 1 depending on the price)."""
    universe = real.load("hyperliquid", "meta_sample")["universe"]
    got = {a["name"]: hyperliquid_definition(a) for a in universe}
    assert {n: (d["base"], d["quote"], d["settle"]) for n, d in got.items()} == {
        n: (n, "USD", "USDC") for n in ("BTC", "ETH", "ATOM")}
    assert {n: d["size_precision"] for n, d in got.items()} == {"BTC": 5, "ETH": 4, "ATOM": 2}
    assert {n: (d["price_precision"], d["price_increment"], d["size_increment"]) for n, d in got.items()} == {
        "BTC": (1, "0.1", "0.00001"), "ETH": (2, "0.01", "0.0001"), "ATOM": (4, "0.0001", "0.01")}


def test_hyperliquid_meta_and_asset_ctxs_matches_nautilus(tmp_path):
    payload, source = real.load("hyperliquid", "meta_and_asset_ctxs"), real.source("hyperliquid", "meta_and_asset_ctxs")
    spot = real.load("hyperliquid", "markets_spot_meta")  # ccxt also asks for spotMeta (its markets are not compared)
    answers = [("POST", "/info", {"type": "spotMeta"}, spot), ("POST", "/info", {"type": "metaAndAssetCtxs"}, payload)]
    markets, ours = asyncio.run(_our_instruments(tmp_path, "hyperliquid", answers, T_HL))
    theirs = [_nautilus_defaults(item, T_HL) for item in payload[0]["universe"]]
    _assert_same(ours, theirs, source)
    hpos = next(i for i in ours if i.raw_symbol.value == "HPOS")  # onlyIsolated: still a perpetual for Nautilus
    assert (hpos.price_precision, hpos.size_precision, str(hpos.quote_currency)) == (6, 0, "USD")
    assert all(i.ts_event == i.ts_init == T_HL for i in ours)
