"""`symbols: all`: what a collector collects follows the venue's listings (actors/listing.py), the
topology's `symbols`/`exclude`, and Bybit's liquidation subscriptions within its limits."""

import copy

import msgspec
import pytest
from loguru import logger

from actors.listing import Listing
from actors.topology import TopologyError, load_topology
from messages.events import Instrument
from tests.fixtures import real
from venues.bybit.adapter import BybitAdapter
from venues.bybit.liquidations import (ARGS_CHARS_PER_CONNECTION, ARGS_PER_REQUEST, TOPICS_PER_CONNECTION,
                                       BybitLiquidations, topics_length)

TEMPLATE = real.load("bybit", "instruments_info_linear")["result"]["list"][0]  # a real BTCUSDT item


def market(base: str, *, status: str = "Trading", settle: str = "USDT", tick: str | None = None) -> dict:
    """A ccxt linear market of Bybit as ccxt builds it, its `info` a real instruments-info item."""
    info = copy.deepcopy(TEMPLATE)
    info.update(symbol=f"{base}{settle}", baseCoin=base, status=status, settleCoin=settle, quoteCoin=settle)
    if tick:
        info["priceFilter"]["tickSize"] = tick
    return {"symbol": f"{base}/{settle}:{settle}", "id": f"{base}{settle}", "base": base, "swap": True, "linear": True,
            "active": status == "Trading", "info": info, "limits": {"leverage": {"max": 100}}}


def listing(*markets: dict) -> dict:
    return {m["symbol"]: m for m in markets}


def test_all_selects_trading_usdt_perpetuals_minus_the_excluded():
    venue = listing(market("BTC"), market("ETH"), market("SOL"), market("NEW", status="PreLaunch"), market("BTC", settle="USDC"))
    got = Listing(BybitAdapter(), ["ETH", "SOLUSDT-LINEAR.BYBIT", "NOPE"], logger).select(venue)
    assert [m["id"] for m in got] == ["BTCUSDT"]


def test_refresh_follows_listings_and_delistings():
    changes = []
    lst = Listing(BybitAdapter(), [], logger)
    collected = lst.select(listing(market("BTC"), market("ETH")))
    first = lst.refresh(collected, listing(market("BTC"), market("ETH")), lambda *a: changes.append(a))
    assert [e.raw_symbol for e in first] == ["BTCUSDT", "ETHUSDT"] and all(isinstance(e, Instrument) for e in first)
    assert changes == []
    assert lst.refresh(collected, listing(market("BTC"), market("ETH")), lambda *a: changes.append(a)) == []  # unchanged
    seen_at = lst.listed_ns
    # ETH delisted (gone from the list), SOL listed, BTC's tick changed
    again = lst.refresh(collected, listing(market("BTC", tick="0.5"), market("SOL"), market("ETH", status="Closed")),
                        lambda *a: changes.append(a))
    assert [m["id"] for m in collected] == ["BTCUSDT", "SOLUSDT"]
    [(listed, delisted, since_ns)] = changes
    assert [m["id"] for m in listed] == ["SOLUSDT"] and [m["id"] for m in delisted] == ["ETHUSDT"] and since_ns == seen_at
    assert {(e.raw_symbol, e.price_increment) for e in again} == {("BTCUSDT", "0.5"), ("SOLUSDT", TEMPLATE["priceFilter"]["tickSize"])}


def test_bybit_liquidation_topics_are_split_within_its_limits():
    feed = BybitLiquidations()
    raws = [f"COIN{i:04d}USDT" for i in range(560)]
    groups = feed.connection_groups(raws)
    assert [s for g in groups for s in g] == raws
    assert len(groups) == 3 and all(len(g) <= TOPICS_PER_CONNECTION and topics_length(g) <= ARGS_CHARS_PER_CONNECTION for g in groups)
    long_names = [f"{'X' * 60}{i:04d}USDT" for i in range(560)]  # the character budget binds before the count
    assert all(topics_length(g) <= ARGS_CHARS_PER_CONNECTION for g in feed.connection_groups(long_names))
    assert len(feed.subscriptions(None, [f"S{i}/USDT:USDT" for i in range(25)], False)) == -(-25 // ARGS_PER_REQUEST)


def _topology(tmp_path, venue: str) -> str:
    path = tmp_path / "t.yaml"
    path.write_text(f"venues: [{venue}]\n")
    return path


def test_symbols_all_defaults_and_errors(tmp_path):
    topo, _ = load_topology(_topology(tmp_path, "{venue: bybit, symbols: all, exclude: [DOGE]}"))
    v = topo.venues[0]
    assert (v.all_symbols, v.exclude, v.open_interest_interval_s, v.funding_interval_s, v.instruments_interval_s) == \
        (True, ["DOGE"], 60.0, 60.0, 60.0)
    listed, _ = load_topology(_topology(tmp_path, "{venue: bybit, symbols: [BTC]}"))
    assert (listed.venues[0].open_interest_interval_s, listed.venues[0].instruments_interval_s) == (10.0, 3600.0)
    for text, words in [("{venue: bybit, symbols: everything}", ["venues[0].symbols", "'everything'", "'all' or a list"]),
                        ("{venue: bybit, symbols: [BTC], exclude: [ETH]}", ["exclude", "['ETH']", "symbols: all"])]:
        with pytest.raises(TopologyError) as err:
            load_topology(_topology(tmp_path, text))
        assert all(w in str(err.value) for w in words), str(err.value)
    assert msgspec.json.decode(msgspec.json.encode(v), type=type(v)) == v  # round-trips with the derived defaults
