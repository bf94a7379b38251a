"""Binance USDT-M payloads, one struct per REST endpoint (an item of its answer), with Binance's
field names and the constraints the project relies on. Read with `venues.schemas.decode`.
Sources: Binance USDT-M futures docs; recorded answers in `tests/fixtures/real/binance/`.
"""

from typing import Annotated, Any

import msgspec

from venues.schemas import Blank, DecimalText, Finite, Schema


class BinanceOpenInterest(Schema, frozen=True):
    """GET /fapi/v1/openInterest: the symbol's open interest now, base-asset units."""

    symbol: str
    open_interest: Finite
    time: int | None = None  # ms


class BinancePremiumIndex(Schema, frozen=True):
    """GET /fapi/v1/premiumIndex (one item per symbol): mark price and the current funding period."""

    symbol: str
    mark_price: Finite
    last_funding_rate: Finite  # the current period's rate, settled at nextFundingTime
    index_price: Finite | Blank | None = None
    next_funding_time: int | None = None  # ms
    time: int | None = None  # ms


class BinanceFundingInfo(Schema, frozen=True):
    """GET /fapi/v1/fundingInfo: only the symbols whose cap, floor or interval was adjusted."""

    symbol: str
    funding_interval_hours: Annotated[int, msgspec.Meta(gt=0, le=24)] | None = None


class BinanceSymbol(Schema, frozen=True):
    """GET /fapi/v1/exchangeInfo, one `symbols` item (ccxt keeps it as `market["info"]`); numbers
    stay as written ("0.10": precision 2). `filters` are read by type (`BinancePriceFilter`, ...)."""

    STRICT = True
    symbol: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    filters: list[dict[str, Any]]


class BinancePriceFilter(Schema, frozen=True):
    """exchangeInfo filter PRICE_FILTER."""

    STRICT = True
    tick_size: DecimalText
    min_price: DecimalText
    max_price: DecimalText


class BinanceLotSize(Schema, frozen=True):
    """exchangeInfo filter LOT_SIZE."""

    STRICT = True
    step_size: DecimalText
    min_qty: DecimalText
    max_qty: DecimalText


class BinanceMinNotional(Schema, frozen=True):
    """exchangeInfo filter MIN_NOTIONAL."""

    STRICT = True
    notional: DecimalText


class BinanceOpenInterestHist(Schema, frozen=True):
    """GET /futures/data/openInterestHist, one row: a `period` bucket, the last 30 days only."""

    sum_open_interest: Finite  # base asset
    sum_open_interest_value: Finite  # USDT
    timestamp: int  # ms, the bucket


class BinanceFundingRate(Schema, frozen=True):
    """GET /fapi/v1/fundingRate, one settled row."""

    funding_rate: Finite
    funding_time: int  # ms
    mark_price: Finite | Blank | None = None
