"""Funding rates in common units, so venues with different intervals compare (issue 15).

A venue quotes funding as a fraction per interval: Binance and Bybit mostly per 8 h (some symbols
per 4 h or 1 h), Hyperliquid per 1 h. Two derived figures put them side by side:

- `annualized(rate, interval_minutes)`: simple (not compounded) yearly rate, 365 days of
  intervals: rate x (525,600 / interval_minutes). 0.0001 per 8 h -> 0.1095 (10.95 % a year).
- `per_8h(rate, interval_minutes)`: the same rate over 8 hours: rate x (480 / interval_minutes).
  0.0000125 per 1 h -> 0.0001 per 8 h.

Simple annualization is what the venues' own dashboards and the common aggregators print; it is
the figure a trader compares with a borrowing rate. NaN in gives NaN out, and so does an
interval that is not positive (no venue has one; a row that says 0 has no meaningful figure).
"""

MINUTES_PER_YEAR = 365 * 24 * 60
MINUTES_8H = 8 * 60
NAN = float("nan")


def annualized(rate: float, interval_minutes: int) -> float:
    """Yearly rate (fraction) of `rate` paid every `interval_minutes`."""
    return rate * MINUTES_PER_YEAR / interval_minutes if interval_minutes > 0 else NAN


def per_8h(rate: float, interval_minutes: int) -> float:
    """The 8-hour equivalent (fraction) of `rate` paid every `interval_minutes`."""
    return rate * MINUTES_8H / interval_minutes if interval_minutes > 0 else NAN


def figures(rate: float, interval_minutes: int, predicted_rate: float | None = None) -> dict[str, float | None]:
    """The derived figures a funding row carries beside its raw rate, named as the catalog
    stores them (`FundingRateInfo`); the predicted ones are None where there is no prediction."""
    predicted = predicted_rate is not None
    return {
        "rate_annualized": annualized(rate, interval_minutes),
        "rate_8h": per_8h(rate, interval_minutes),
        "predicted_rate_annualized": annualized(predicted_rate, interval_minutes) if predicted else None,
        "predicted_rate_8h": per_8h(predicted_rate, interval_minutes) if predicted else None,
    }
