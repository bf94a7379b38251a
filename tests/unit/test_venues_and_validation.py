"""Pure normalization: symbol resolution, instrument ids, unit conversions, validation reasons."""

import json
import math

import msgspec
import pytest

from actors.validator import known_peer, refuse_sender, validate
from venues import UnknownSymbol, adapter
from venues.binance import adapter as binance
from venues.hyperliquid import adapter as hyperliquid
from messages.codec import encode
from messages.envelope import Envelope
from messages.events import FundingRate, Instrument, Liquidation, Malformed, OpenInterest
from tests.fixtures import real

NOW = 1_750_000_000_000_000_000


def market(venue: str, base: str, quote: str, mid: str, **extra) -> dict:
    return {
        "symbol": f"{base}/{quote}:{quote}", "id": mid, "base": base, "quote": quote, "settle": quote, "swap": True, "linear": True, "active": True,
        "precision": {"price": 0.1, "amount": 0.001}, "limits": {"amount": {"min": 0.001, "max": 1000.0}, "cost": {"min": 5.0}, "leverage": {"max": 125.0}},
        "maker": 0.0002, "taker": 0.0005, "info": {}, **extra,
    }


BINANCE = {m["symbol"]: m for m in [market("binance", "BTC", "USDT", "BTCUSDT"), market("binance", "ETH", "USDT", "ETHUSDT"), market("binance", "BTCDOM", "USDT", "BTCDOMUSDT")]}
HL = {m["symbol"]: m for m in [market("hyperliquid", "BTC", "USDC", "0", baseName="BTC"), market("hyperliquid", "ETH", "USDC", "1", baseName="ETH")]}


@pytest.mark.parametrize("text", ["BTC", "btc", "BTCUSDT", "BTC/USDT:USDT", "BTCUSDT-PERP", "BTCUSDT-PERP.BINANCE"])
def test_binance_symbol_resolves_from_every_common_spelling(text):
    assert adapter("binance").resolve(BINANCE, text)["id"] == "BTCUSDT"


def test_hyperliquid_ids_use_the_coin_not_ccxts_asset_index():
    ad = adapter("hyperliquid")
    m = ad.resolve(HL, "BTC-USD-PERP.HYPERLIQUID")
    assert ad.instrument_id(m) == "BTC-USD-PERP.HYPERLIQUID" and ad.raw_symbol(m) == "BTC"


def test_unknown_symbol_names_it_and_suggests_the_closest_listed():
    with pytest.raises(UnknownSymbol) as err:
        adapter("binance").resolve(BINANCE, "BTCUSDX")
    assert "'BTCUSDX'" in str(err.value) and "BINANCE" in str(err.value)
    assert err.value.suggestions[0] == "BTCUSDT"


def test_instrument_definition_keeps_the_venues_written_precision():
    """Bybit's docs example lists BTCUSDT with tickSize "0.10": precision 2 (Nautilus's parse,
    tests/nautilus/test_instruments_golden.py), where ccxt's number 0.1 would say 1."""
    item = real.load("bybit", "instruments_info_linear")["result"]["list"][0]
    m = market("bybit", "BTC", "USDT", "BTCUSDT", precision={"price": 0.1, "amount": 0.001}) | {"info": item}
    inst = adapter("bybit").instrument(m, NOW)
    assert inst.instrument_id == "BTCUSDT-LINEAR.BYBIT" and (inst.ts_event, inst.ts_recv) == (NOW, NOW)
    assert (inst.price_increment, inst.price_precision, inst.size_increment, inst.size_precision) == ("0.10", 2, "0.001", 3)
    assert (inst.max_quantity, inst.min_notional, inst.max_price, inst.min_price) == ("1190.000", "5", "1999999.80", "0.10")


@pytest.mark.parametrize(("venue", "fixture", "path", "bad", "said"), [
    ("bybit", ("bybit", "instruments_info_linear"), ("result", "list", 0, "priceFilter", "tickSize"), "0,10", "'0,10'"),
    ("binance", ("binance", "exchange_info"), ("symbols", 0, "filters", 0, "tickSize"), None, "None"),
    ("hyperliquid", ("hyperliquid", "meta_sample"), ("universe", 0, "szDecimals"), "5", "'5'"),
])
def test_a_listing_item_that_cannot_be_read_becomes_malformed_naming_the_value(venue, fixture, path, bad, said):
    payload = json.loads(json.dumps(real.load(*fixture)))  # a copy to spoil
    holder = payload
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = bad
    item = payload["result"]["list"][0] if venue == "bybit" else payload[path[0]][0]
    m = market(venue, "BTC", "USDT", item.get("symbol") or item["name"]) | {"info": item, "baseName": "BTC"}
    event = adapter(venue).instrument_event(m, NOW)
    assert isinstance(event, Malformed) and said in event.reason, event


def test_binance_oi_value_is_amount_times_mark_and_keeps_venue_time():
    m = BINANCE["BTC/USDT:USDT"]
    oi = {"symbol": "BTCUSDT", "openInterest": "2.5", "time": 1_750_000_000_123}  # /fapi/v1/openInterest
    premium = {"symbol": "BTCUSDT", "markPrice": "100000.00", "lastFundingRate": "0.0001"}  # /fapi/v1/premiumIndex
    ev = binance.normalize_open_interest(oi, premium, m, "BTCUSDT-PERP.BINANCE", NOW)
    assert ev.open_interest_value == 250_000.0 and ev.ts_event == 1_750_000_000_123_000_000 and ev.ts_recv == NOW


def test_hyperliquid_funding_takes_the_venues_own_prediction():
    m = HL["BTC/USDC:USDC"]
    ctx = {"name": "BTC", "funding": "0.0000125", "markPx": "100.0", "oraclePx": "99.9", "openInterest": "1.5"}
    pred = hyperliquid.predicted_by_coin([["BTC", [["BinPerp", {"fundingRate": "0.0001"}], ["HlPerp", {"fundingRate": "0.00002", "nextFundingTime": 1_750_003_600_000, "fundingIntervalHours": 1}]]]])
    ev = hyperliquid.normalize_funding(ctx, pred["BTC"], 1_750_003_600_000, m, "BTC-USD-PERP.HYPERLIQUID", NOW)
    assert ev.predicted_rate == 0.00002 and ev.interval_minutes == 60 and ev.next_funding_ns == 1_750_003_600_000_000_000
    assert ev.ts_event == NOW  # Hyperliquid gives no timestamp: receive time


def good_oi(**changes) -> OpenInterest:
    base = OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=NOW, ts_recv=NOW, open_interest=1.0, open_interest_value=2.0)
    return msgspec.structs.replace(base, **changes)


def envelope(payload: bytes) -> Envelope:
    return Envelope(source="c", epoch=1, seq=1, payload=msgspec.Raw(payload))


@pytest.mark.parametrize(
    "event, reason",
    [
        (good_oi(open_interest=math.nan), "open_interest"),
        (good_oi(open_interest=-1.0), ">= 0.0"),
        (good_oi(ts_event=NOW // 1_000_000), "ts_event"),  # milliseconds where nanoseconds belong
        (good_oi(ts_event=NOW + 3600 * 10**9), "in the future"),
        (good_oi(instrument_id="BTCUSDT-LINEAR.BYBIT"), "does not belong to venue BINANCE"),
        # values no file system or catalog takes: the reason names the value and what is valid
        (good_oi(instrument_id="A" * 300 + "-PERP.BINANCE"), "instrument_id 'AAAA"),
        (good_oi(instrument_id="A" * 300 + "-PERP.BINANCE"), "(313 characters)"),
        (good_oi(instrument_id="BTC/USDT-PERP.BINANCE"), "SYMBOL.VENUE, at most 60 characters"),
        (good_oi(instrument_id="BTC USDT-PERP.BINANCE"), "instrument_id 'BTC USDT-PERP.BINANCE'"),
        (good_oi(instrument_id="BTC\x00-PERP.BINANCE"), "instrument_id"),
        (good_oi(instrument_id=".BINANCE"), "instrument_id"),
        (good_oi(instrument_id="BTCUSDT-PERP.KRAKEN"), "instrument_id"),
        (good_oi(symbol=""), "symbol"),
        (good_oi(symbol="x" * 65), "symbol"),
        (good_oi(open_interest=math.inf), "open_interest"),
        (good_oi(ts_recv=NOW + 3600 * 10**9), "ts_recv"),
    ],
)
def test_validator_refuses_bad_values_with_a_reason(event, reason):
    good, why = validate(envelope(encode(event)), NOW)
    assert good is None and reason in why


def test_validator_refuses_garbage_payloads_and_passes_good_ones():
    assert validate(envelope(b"\xc1garbage"), NOW)[1].startswith("invalid event")
    assert validate(envelope(encode({"kind": "open_interest", "venue": "BINANCE"})), NOW)[1].startswith("invalid event")
    assert validate(envelope(encode(good_oi())), NOW) == (good_oi(), None)


def good_instrument(**changes) -> Instrument:
    base = Instrument(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=NOW, ts_recv=NOW,
                      raw_symbol="BTCUSDT", base="BTC", quote="USDT", settle="USDT", price_precision=1, size_precision=3,
                      price_increment="0.1", size_increment="0.001", max_quantity="1000", min_notional="5", maker_fee="-0.0001")
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize("field, value", [
    ("price_increment", "0"),  # Nautilus refuses a zero increment: catalog.instruments() would fail on the row
    ("price_increment", "abc"),
    ("size_increment", "1e-3"),
    ("max_quantity", "1" + "0" * 13),  # beyond Nautilus's QUANTITY_MAX
    ("price_increment", "0." + "0" * 17 + "1"),  # beyond Nautilus's 16 places
    ("base", ""),
    ("quote", "US DT"),
    ("max_leverage", math.inf),
])
def test_instrument_definitions_nautilus_could_not_load_are_refused(field, value):
    good, why = validate(envelope(encode(good_instrument(**{field: value}))), NOW)
    assert good is None and field in why
    assert validate(envelope(encode(good_instrument())), NOW) == (good_instrument(), None)


@pytest.mark.parametrize("instrument_id", ["币安人生USDT-PERP.BINANCE", "1000PEPEUSDT-PERP.BINANCE", "xyz:XYZ100-USD-PERP.HYPERLIQUID",
                                           "kPEPE-USD-PERP.HYPERLIQUID", "BTCUSDT-LINEAR.BYBIT"])
def test_real_instrument_ids_pass(instrument_id):
    venue = instrument_id.rsplit(".", 1)[1]
    event = good_oi(instrument_id=instrument_id, venue=venue)
    assert validate(envelope(encode(event)), NOW) == (event, None)


def liquidation(venue: str = "BYBIT", iid: str = "BTCUSDT-LINEAR.BYBIT") -> Liquidation:
    return Liquidation(venue=venue, symbol="BTC/USDT:USDT", instrument_id=iid, ts_event=NOW, ts_recv=NOW, side="LONG",
                       quantity=1.0, price=2.0, value=2.0)


MESH = {"binance", "bybit"}  # the topology's venues


@pytest.mark.parametrize("source, event, reason", [
    ("collector.binance", liquidation(), "collector.binance may send BINANCE events only, not BYBIT"),
    ("collector.hyperliquid", good_oi(venue="HYPERLIQUID", instrument_id="BTC-USD-PERP.HYPERLIQUID"),
     "not a collector of this mesh (its venues: binance, bybit)"),
    ("cli.history.binance.4242", good_oi(venue="BYBIT", instrument_id="BTCUSDT-LINEAR.BYBIT"), "BINANCE events only"),
    ("cli.history.bybit.4242", liquidation(), "not Liquidation"),
    ("cli.history.binance.4242", FundingRate(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE",
                                             ts_event=NOW, ts_recv=NOW, rate=0.0001, interval_minutes=480), "not live funding"),
    ("cli.history.4242", good_oi(), "neither a collector"),  # the old, venue-less name: anyone could claim it
])
def test_a_sender_may_send_its_own_venues_events_only(source, event, reason):
    why = refuse_sender(source, event, MESH)
    assert why is not None and reason in why, why


def test_senders_of_their_own_venue_pass():
    assert refuse_sender("collector.bybit", liquidation(), MESH) is None
    assert refuse_sender("collector.binance", good_oi(), MESH) is None
    assert refuse_sender("cli.history.binance.4242", good_oi(), MESH) is None
    assert refuse_sender("cli.history.hyperliquid.7", good_oi(venue="HYPERLIQUID", instrument_id="BTC-USD-PERP.HYPERLIQUID"), MESH) is None
    assert known_peer(b"cli.history.bybit.12") and known_peer(b"collector.bybit")
    assert not known_peer(b"cli.history.12") and not known_peer(b"cli.history.kraken.12") and not known_peer(b"collector.kraken")
