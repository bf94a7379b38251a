"""Property tests: for arbitrary payloads, no normalizer and not the validator lets an exception
escape, and every input ends as either a valid event or a refusal with a reason (a Malformed
event, a Rejected reason, or a skip reason)."""

import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.validator import validate, validate_event
from venues import adapter
from venues.binance import adapter as binance
from venues.bybit import adapter as bybit
from venues.hyperliquid import adapter as hyperliquid
from venues.binance.liquidations import force_orders as binance_force_orders
from venues.bybit.liquidations import all_liquidation as bybit_all_liquidation
from messages.codec import encode
from messages.envelope import Envelope
from messages.events import FundingRate, Liquidation, Malformed, OpenInterest

NOW = 1_750_000_000_000_000_000
NOW_MS = NOW // 1_000_000

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# numbers as venues send them (strings) and as ccxt parses them (floats), sometimes absurd
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e6, 1e6).map(str) | st.integers(-10**6, 10**9)
values = numbers | json_values
timestamps = st.none() | st.integers(-10**15, 10**16) | st.just(NOW_MS) | json_values


def market(venue: str, base: str = "BTC") -> dict:
    quote = "USDC" if venue == "hyperliquid" else "USDT"
    return {"symbol": f"{base}/{quote}:{quote}", "id": "0" if venue == "hyperliquid" else f"{base}{quote}", "base": base,
            "quote": quote, "settle": quote, "baseName": base, "swap": True, "linear": True, "active": True,
            "info": {"fundingInterval": 480}}


def optional_keys(**fields) -> st.SearchStrategy[dict]:
    """Dicts holding any subset of the given keys (a missing field is a case too)."""
    return st.fixed_dictionaries({}, optional=fields)


def outcome(ad, m: dict, raw, build) -> tuple[object, str | None]:
    """What the collector and the validator make of one item: (event, reason)."""
    event = ad.safely(m, raw, NOW, build)
    assert isinstance(event, OpenInterest | FundingRate | Malformed)
    good, reason = validate_event(event, NOW)
    if type(event) is Malformed:
        assert good is None and reason and event.reason in reason  # always refused, with its reason
    else:
        assert (good is None) == bool(reason)
    return good, reason


def assert_valid(event) -> None:
    if isinstance(event, OpenInterest):
        assert math.isfinite(event.open_interest) and event.open_interest >= 0 and event.open_interest_value >= 0
    if isinstance(event, FundingRate):
        assert math.isfinite(event.rate) and -0.1 <= event.rate <= 0.1


# The venues' items as JSON gives them (ccxt keeps them in `info`), fields present or not.
premium_index = optional_keys(symbol=st.just("BTCUSDT") | json_values, markPrice=values, indexPrice=values,
                              lastFundingRate=values, nextFundingTime=timestamps, time=timestamps)


@settings(max_examples=150, deadline=None)
@given(oi=optional_keys(symbol=st.just("BTCUSDT") | json_values, openInterest=values, time=timestamps) | json_values,
       premium=premium_index | json_values)
def test_binance_open_interest(oi, premium):
    ad, m = adapter("binance"), market("binance")
    good, _ = outcome(ad, m, oi, lambda: binance.normalize_open_interest(oi, premium, m, ad.instrument_id(m), NOW))
    good and assert_valid(good)


@settings(max_examples=150, deadline=None)
@given(premium=premium_index | json_values, interval=st.integers(-10, 10_000))
def test_binance_funding(premium, interval):
    ad, m = adapter("binance"), market("binance")
    good, _ = outcome(ad, m, premium, lambda: binance.normalize_funding(premium, interval, m, ad.instrument_id(m), NOW))
    good and assert_valid(good)


bybit_ticker = optional_keys(symbol=st.just("BTCUSDT") | json_values, openInterest=values, openInterestValue=values,
                             singleOpenInterest=values | st.just(""), singleOpenInterestValue=values | st.just(""),
                             fundingRate=values, nextFundingTime=timestamps | st.just(""), markPrice=values,
                             indexPrice=values)


@settings(max_examples=150, deadline=None)
@given(ticker=bybit_ticker | json_values, time_ms=timestamps, interval=st.integers(-10, 10_000))
def test_bybit_open_interest_and_funding(ticker, time_ms, interval):
    ad, m = adapter("bybit"), market("bybit")
    good, _ = outcome(ad, m, ticker, lambda: bybit.normalize_open_interest(ticker, time_ms, m, ad.instrument_id(m), NOW))
    good and assert_valid(good)
    good, _ = outcome(ad, m, ticker, lambda: bybit.normalize_funding(ticker, time_ms, interval, m, ad.instrument_id(m), NOW))
    good and assert_valid(good)


@settings(max_examples=150, deadline=None)
@given(ctx=optional_keys(name=st.just("BTC") | json_values, openInterest=values, markPx=values, funding=values,
                         oraclePx=values) | json_values,
       predictions=json_values, next_hour=timestamps)
def test_hyperliquid_open_interest_funding_and_predictions(ctx, predictions, next_hour):
    ad, m = adapter("hyperliquid"), market("hyperliquid")
    predicted = hyperliquid.predicted_by_coin(predictions)  # never raises on garbage
    assert isinstance(predicted, dict)
    good, _ = outcome(ad, m, ctx, lambda: hyperliquid.normalize_open_interest(ctx, m, ad.instrument_id(m), NOW))
    good and assert_valid(good)
    good, _ = outcome(ad, m, ctx, lambda: hyperliquid.normalize_funding(ctx, predicted.get("BTC"), next_hour, m,
                                                                          ad.instrument_id(m), NOW))
    good and assert_valid(good)


SYMBOLS = {"BTCUSDT": ("BTC/USDT:USDT", "BTCUSDT-PERP.BINANCE")}


@settings(max_examples=150, deadline=None)
@given(message=json_values | st.fixed_dictionaries({"e": st.just("forceOrder"), "o": optional_keys(
    s=st.just("BTCUSDT") | json_values, S=st.sampled_from(["BUY", "SELL", "x"]) | json_values, z=values, l=values,
    q=values, ap=values, p=values, T=timestamps)}))
def test_binance_liquidations_never_raise_and_account_for_every_item(message):
    events, skipped = binance_force_orders(message, SYMBOLS, NOW)
    items = message if isinstance(message, list) else [message]
    assert len(events) + len(skipped) == len(items) or (isinstance(message, dict) and "stream" in message)
    assert all(isinstance(r, str) and r for r in skipped)
    for e in events:
        assert validate_event(e, NOW + 10**18)[1] in (None,) or "future" in validate_event(e, NOW + 10**18)[1]
        assert isinstance(e, Liquidation) and e.quantity > 0 and e.price > 0


@settings(max_examples=150, deadline=None)
@given(message=json_values | st.fixed_dictionaries({"topic": st.just("allLiquidation.BTCUSDT"), "data": st.lists(
    optional_keys(s=st.just("BTCUSDT") | json_values, S=st.sampled_from(["Buy", "Sell"]) | json_values, v=values,
                  p=values, T=timestamps) | json_values, max_size=4)}))
def test_bybit_liquidations_never_raise_and_account_for_every_item(message):
    events, skipped = bybit_all_liquidation(message, {"BTCUSDT": ("BTC/USDT:USDT", "BTCUSDT-LINEAR.BYBIT")}, NOW)
    if isinstance(message, dict) and isinstance(message.get("data"), list) and str(message.get("topic", "")).startswith("allLiquidation."):
        assert len(events) + len(skipped) == len(message["data"])
    else:
        assert events == [] and skipped
    assert all(isinstance(e, Liquidation) and e.quantity > 0 for e in events)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200) | json_values.map(lambda v: msgspec.msgpack.encode(v))
       | st.fixed_dictionaries({"kind": st.sampled_from(["open_interest", "funding_rate", "malformed", "gap", "liquidation"]),
                                "venue": st.sampled_from(["BINANCE", "BYBIT", "x"]) | json_values,
                                "symbol": st.text(max_size=5), "instrument_id": st.text(max_size=20),
                                "ts_event": timestamps, "ts_recv": timestamps, "open_interest": values,
                                "open_interest_value": values, "rate": values, "interval_minutes": values,
                                "reason": st.text(max_size=5)}).map(lambda d: msgspec.msgpack.encode(d, enc_hook=str)))
def test_validator_never_raises_and_refuses_with_a_reason(payload):
    envelope = Envelope(source="collector.binance", epoch=1, seq=1, payload=msgspec.Raw(payload))
    event, reason = validate(envelope, NOW)
    assert (event is None) != (reason is None)
    if reason is not None:
        assert isinstance(reason, str) and reason
    else:
        assert type(event) is not Malformed
        assert validate(Envelope(source="x", epoch=1, seq=1, payload=msgspec.Raw(encode(event))), NOW)[1] is None
