"""Funding in common units (messages/funding.py): venues with 1 h, 4 h and 8 h intervals compare."""

import math

import pytest

from messages.funding import annualized, figures, per_8h


@pytest.mark.parametrize("rate, minutes, yearly, eight_h", [
    (0.0001, 480, 0.1095, 0.0001),          # Binance/Bybit 8 h: 3 a day x 365
    (0.0001, 240, 0.2190, 0.0002),          # a 4 h symbol pays twice as often
    (0.0000125, 60, 0.1095, 0.0001),        # Hyperliquid hourly: the same carry as 0.0001 per 8 h
    (-0.00005, 60, -0.438, -0.0004),
])
def test_annualized_and_8h_equivalent(rate, minutes, yearly, eight_h):
    assert annualized(rate, minutes) == pytest.approx(yearly, rel=1e-12)
    assert per_8h(rate, minutes) == pytest.approx(eight_h, rel=1e-12)


def test_no_figure_without_a_rate_or_an_interval():
    assert math.isnan(annualized(float("nan"), 480)) and math.isnan(per_8h(float("nan"), 60))
    assert math.isnan(annualized(0.0001, 0)) and math.isnan(per_8h(0.0001, 0))  # not a real interval: no figure


def test_figures_name_the_columns_the_catalog_stores():
    assert figures(0.0000125, 60, 0.00001) == pytest.approx({
        "rate_annualized": 0.1095, "rate_8h": 0.0001, "predicted_rate_annualized": 0.0876, "predicted_rate_8h": 0.00008})
    assert figures(0.0001, 480) == {"rate_annualized": pytest.approx(0.1095), "rate_8h": 0.0001,
                                    "predicted_rate_annualized": None, "predicted_rate_8h": None}
