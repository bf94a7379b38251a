"""Bybit v5 payloads, one struct per REST endpoint (an item of its answer, or a page where the
project pages by hand), with Bybit's field names and the constraints the project relies on.
Read with `venues.schemas.decode`. Sources: bybit-exchange/docs (v5); recorded answers in
`tests/fixtures/real/bybit/`.

Open interest: `openInterest` / `openInterestValue` count both sides on every date; the one-side
`singleOpenInterest(Value)` exist since 2026-06-11 (README, units registry; `one_side`).
"""

from typing import Annotated

import msgspec

from venues.schemas import Blank, DecimalText, Finite, Schema

Millis = int | Blank | None  # Bybit writes times as strings, "" when there is none


def one_side(single: float | Blank | None, both: float) -> float:
    """One side of a Bybit OI figure: the one-side field when the payload has it, else half the
    two-sided one (whatever the row's date: one series means one thing on both sides of 2026-06-11)."""
    return both / 2 if single is None or single == "" else single


class BybitTicker(Schema, frozen=True):
    """GET /v5/market/tickers?category=linear, one `result.list` item: live open interest and the
    funding rate to be settled at nextFundingTime. (The answer's `time`: ccxt's `timestamp`.)"""

    symbol: str
    open_interest: Finite  # both sides, base units
    open_interest_value: Finite  # both sides, USD
    funding_rate: Finite
    single_open_interest: Finite | Blank | None = None
    single_open_interest_value: Finite | Blank | None = None
    next_funding_time: Millis = None
    mark_price: Finite | Blank | None = None
    index_price: Finite | Blank | None = None


class BybitPriceFilter(Schema, frozen=True):
    STRICT = True
    tick_size: DecimalText
    min_price: DecimalText
    max_price: DecimalText


class BybitLotSizeFilter(Schema, frozen=True):
    STRICT = True
    qty_step: DecimalText
    min_order_qty: DecimalText
    max_order_qty: DecimalText
    min_notional_value: DecimalText | Blank | None = None


class BybitInstrument(Schema, frozen=True):
    """GET /v5/market/instruments-info?category=linear, one `result.list` item (ccxt keeps it as
    `market["info"]`); numbers stay as written ("0.10": precision 2)."""

    STRICT = True
    symbol: str
    base_coin: str
    quote_coin: str
    price_filter: BybitPriceFilter
    lot_size_filter: BybitLotSizeFilter
    settle_coin: str | None = None


class BybitInstrumentFunding(Schema, frozen=True):
    """The funding part of the same instruments-info item, read on every funding poll (the rest of
    the item is the definition's business): the interval in minutes (docs example: 480)."""

    funding_interval: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)] | Blank | None = None


class BybitOpenInterest(Schema, frozen=True):
    """GET /v5/market/open-interest, one row: the OI of an `intervalTime` bucket."""

    open_interest: Finite  # both sides, base units
    timestamp: int  # ms, the bucket
    single_open_interest: Finite | Blank | None = None


class BybitOpenInterestResult(Schema, frozen=True):
    rows: list[BybitOpenInterest] | None = msgspec.field(default=None, name="list")
    next_page_cursor: str | None = None


class BybitOpenInterestPage(Schema, frozen=True):
    """GET /v5/market/open-interest: one page, newest first; `nextPageCursor` leads to the next."""

    result: BybitOpenInterestResult | None = None


class BybitMarkPriceKline(Schema, frozen=True, array_like=True):
    """GET /v5/market/mark-price-kline, one candle: [startTime, open, high, low, close]."""

    start: int  # ms
    open: Finite
    high: Finite
    low: Finite
    close: Finite


class BybitMarkPriceKlineResult(Schema, frozen=True):
    rows: list[BybitMarkPriceKline] | None = msgspec.field(default=None, name="list")


class BybitMarkPriceKlinePage(Schema, frozen=True):
    """GET /v5/market/mark-price-kline: one page of candles, newest first."""

    result: BybitMarkPriceKlineResult | None = None


class BybitFundingHistory(Schema, frozen=True):
    """GET /v5/market/funding/history, one settled row."""

    funding_rate: Finite
    funding_rate_timestamp: int  # ms
