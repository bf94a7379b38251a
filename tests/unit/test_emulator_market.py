"""The emulator's market model: deterministic, stateless, realistic magnitudes."""

from __future__ import annotations

import pytest

from emulator.common import fixed, quarterly_expiry_ms, stripped
from emulator.hyperliquid.assets import price as hl_price
from emulator.market import COINS, HOUR, LISTINGS, MIN, SEC, VENUES, Market

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# Rough bounds (coins / USD) a realistic series stays within around the reference level.
OI_BOUNDS = {
    "BTC": (40_000, 160_000),
    "ETH": (700_000, 3_000_000),
    "SOL": (3_000_000, 16_000_000),
    "XRP": (150e6, 600e6),
    "DOGE": (2e9, 10e9),
    "HYPE": (8e6, 40e6),
}
PRICE_BOUNDS = {
    "BTC": (60_000, 140_000),
    "ETH": (2_000, 5_000),
    "SOL": (100, 300),
    "XRP": (1.3, 4),
    "DOGE": (0.15, 0.6),
    "HYPE": (10, 50),
}


def _sample_times(n: int = 200, step: int = 7 * HOUR + 13 * MIN + 17 * SEC) -> list[int]:
    return [T0 + i * step for i in range(n)]


def test_same_seed_same_values_and_no_state() -> None:
    a, b = Market(7), Market(7)
    times = _sample_times(30)
    forward = [a.open_interest("BTC", t, "binance") for t in times]
    # Order of calls (and another instance) must not matter: the model is a pure function.
    backward = [b.open_interest("BTC", t, "binance") for t in reversed(times)][::-1]
    assert forward == backward
    for t in times:
        assert a.mark_price("ETH", t, "bybit") == b.mark_price("ETH", t, "bybit")
        assert a.index_price("SOL", t) == b.index_price("SOL", t)
        assert a.funding_rate("hyperliquid", "BTC", t // HOUR * HOUR) == b.funding_rate(
            "hyperliquid", "BTC", t // HOUR * HOUR
        )


def test_different_seeds_differ() -> None:
    a, b = Market(7), Market(8)
    t = T0 + 123_456
    assert a.open_interest("BTC", t) != b.open_interest("BTC", t)
    assert a.mark_price("BTC", t) != b.mark_price("BTC", t)
    rates_a = [a.funding_rate("binance", "ETH", T0 + i * 8 * HOUR) for i in range(20)]
    rates_b = [b.funding_rate("binance", "ETH", T0 + i * 8 * HOUR) for i in range(20)]
    assert rates_a != rates_b


@pytest.mark.parametrize("coin", COINS)
def test_open_interest_and_prices_in_realistic_ranges(coin: str) -> None:
    m = Market(7)
    lo, hi = OI_BOUNDS[coin]
    plo, phi = PRICE_BOUNDS[coin]
    for t in _sample_times():
        assert lo <= m.open_interest(coin, t) <= hi
        index = m.index_price(coin, t)
        assert plo <= index <= phi
        for venue in VENUES:
            # Venue mark prices stay within a few bps of the shared index.
            assert abs(m.mark_price(coin, t, venue) / index - 1) < 0.001
            assert 0 < m.open_interest(coin, t, venue) <= hi


def test_venue_sizes_differ_realistically() -> None:
    m = Market(7)
    t = T0 + 5 * HOUR
    binance, bybit, hl = (m.open_interest("BTC", t, v) for v in VENUES)
    assert binance > bybit > hl > 0.2 * binance


def test_series_are_smooth_random_walk_like() -> None:
    m = Market(7)
    t = T0 + 3 * HOUR + 12_345
    values = [m.open_interest("BTC", t + i * SEC, "binance") for i in range(120)]
    steps = [abs(b / a - 1) for a, b in zip(values, values[1:], strict=False)]
    assert max(steps) < 0.002  # a second moves OI by far less than 0.2 %
    assert len(set(values)) == len(values)  # but it does move every second
    prices = [m.mark_price("ETH", t + i * SEC) for i in range(60)]
    assert max(abs(b / a - 1) for a, b in zip(prices, prices[1:], strict=False)) < 0.002


def test_funding_rate_range_and_rounding() -> None:
    m = Market(7)
    for venue in VENUES:
        for coin in LISTINGS[venue]:
            iv_h = m.funding_interval_hours(venue, coin, T0)
            rates = [m.funding_rate(venue, coin, T0 + i * iv_h * HOUR) for i in range(300)]
            scale = iv_h / 8
            assert all(-0.0005 * scale - 1e-12 <= r <= 0.001 * scale + 1e-12 for r in rates)
            assert len(set(rates)) > 50, (venue, coin)  # not a constant
            assert any(r < 0 for r in rates), (venue, coin)  # rates do turn negative
    # Binance publishes 8 decimals, Bybit 6, Hyperliquid (hourly) 10.
    r = m.funding_rate("binance", "BTC", T0)
    assert r == round(r, 8)
    assert m.funding_rate("bybit", "BTC", T0) == round(m.funding_rate("bybit", "BTC", T0), 6)


def test_funding_intervals() -> None:
    m = Market(7)
    expected = {
        "binance": {"BTC": 8, "ETH": 8, "SOL": 4, "XRP": 8, "DOGE": 8},
        "bybit": {"BTC": 8, "ETH": 8, "SOL": 8, "XRP": 8, "DOGE": 4, "HYPE": 1},
        "hyperliquid": {c: 1 for c in LISTINGS["hyperliquid"]},
    }
    for venue, by_coin in expected.items():
        assert set(by_coin) == set(LISTINGS[venue])
        for coin, hours in by_coin.items():
            for t in (T0, T0 + 90 * 24 * HOUR):
                assert m.funding_interval_hours(venue, coin, t) == hours
    with pytest.raises(KeyError):
        m.funding_interval_hours("binance", "HYPE", T0)


def test_next_funding_is_aligned_and_strictly_after() -> None:
    m = Market(7)
    t = T0 + 5 * HOUR + 1
    assert m.next_funding_ms("binance", "BTC", t) == T0 + 8 * HOUR
    assert m.next_funding_ms("binance", "SOL", t) == T0 + 8 * HOUR
    assert m.next_funding_ms("bybit", "DOGE", T0 + 4 * HOUR) == T0 + 8 * HOUR  # on a boundary: the next one
    assert m.next_funding_ms("hyperliquid", "ETH", t) == T0 + 6 * HOUR


def test_number_formats() -> None:
    assert fixed(0.0001, 8) == "0.00010000"
    assert fixed(-0.0, 3) == "0.000"
    assert stripped(0.0001, 6) == "0.0001"
    assert stripped(-0.000212, 6) == "-0.000212"
    assert hl_price(77561.7, 5) == "77562.0"
    assert hl_price(2123.71, 4) == "2123.7"
    assert hl_price(2.13149, 0) == "2.1315"
    assert hl_price(0.3212345, 0) == "0.32123"


def test_quarterly_expiry_is_last_friday_of_quarter() -> None:
    # 2026-03-27 is the last Friday of March 2026; from Jan 1st the next quarterly is then.
    assert quarterly_expiry_ms(T0) == 1_774_598_400_000  # 2026-03-27T08:00:00Z
    # After that delivery the next one is the last Friday of June (2026-06-26).
    assert quarterly_expiry_ms(1_774_598_400_000) == 1_782_460_800_000
