"""Normalized derivative-market events, one struct per kind, the same for every venue.

Constraints (`Meta`) are enforced by typed decoding only (msgspec never checks them on
construction): the venues build events with `checked`, which converts with them, and the
validator's decoder checks them again on the bus. Unknown fields are allowed so that an older
reader keeps working when a field is added.
"""

from typing import Annotated, Any, Literal, TypeVar

import msgspec

Venue = Literal["BINANCE", "BYBIT", "HYPERLIQUID"]
VENUES: tuple[Venue, ...] = ("BINANCE", "BYBIT", "HYPERLIQUID")

# Timestamps are UNIX nanoseconds. 2015-01-01 .. 2100-01-01 bounds catch ms/s/us mix-ups.
NanosTs = Annotated[int, msgspec.Meta(ge=1_420_070_400_000_000_000, le=4_102_444_800_000_000_000)]
# Amounts are finite (msgpack carries inf, and no market has an infinite price or size).
MAX_AMOUNT = 1e18
NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
Positive = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_AMOUNT)]
# Funding rates are fractions per interval; |rate| > 10 % per interval is not a real market.
Rate = Annotated[float, msgspec.Meta(ge=-0.1, le=0.1)]

# The catalog names a directory after the instrument id (`data/<kind>/<id>/`, Nautilus's
# `urisafe_identifier`), and Nautilus's `InstrumentId.from_str` splits it at the last '.': so a
# symbol of word characters (any script: Binance lists 币安人生USDT) and . : @ + - (Hyperliquid's
# HIP-3 perps are `dex:COIN`), then the venue. At most 60 characters: a path component is at
# most 255 bytes, and UTF-8 takes up to 4 a character. No '/', no space, no control character.
INSTRUMENT_ID_PATTERN = r"^\w[\w.:@+-]*\.(BINANCE|BYBIT|HYPERLIQUID)$"
InstrumentId = Annotated[str, msgspec.Meta(max_length=60, pattern=INSTRUMENT_ID_PATTERN)]
# Names (ccxt symbol, venue id, currency codes): printable, short (they become catalog strings and
# Nautilus identifiers; Nautilus refuses an empty or all-blank one).
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x20\x7f]+$")]
# Decimal strings that become Nautilus Price/Quantity/Money: plain digits, at most 12 before the
# point (PRICE_MAX is 1.7e13) and 16 after it (Nautilus's maximum precision).
PositiveDecimal = Annotated[str, msgspec.Meta(pattern=r"^(?=.*[1-9])\d{1,12}(\.\d{1,16})?$")]
NonNegativeDecimal = Annotated[str, msgspec.Meta(pattern=r"^\d{1,12}(\.\d{1,16})?$")]
Fee = Annotated[str, msgspec.Meta(pattern=r"^-?\d{1,12}(\.\d{1,16})?$")]  # a maker rebate is negative


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Fields every event carries.

    `symbol` is the ccxt unified symbol (`BTC/USDT:USDT`); `instrument_id` is the id that
    NautilusTrader's own adapter uses for the same instrument (`BTCUSDT-PERP.BINANCE`), so rows
    join with a user's bars and trades. `ts_event` is venue time where the venue gives one,
    otherwise the receive time; `ts_recv` is when the collector received it.
    """

    venue: Venue
    symbol: Name
    instrument_id: InstrumentId
    ts_event: NanosTs
    ts_recv: NanosTs


# Where a stored open-interest row came from (issue 15.3): "poll" = the venue's current figure,
# asked by the collector (a point in time); "history" = a bucket of the venue's OI history
# (`derivs history oi`, the daemon's backfill); "archive" = a snapshot from a venue's public bulk
# archive (Binance's data.binance.vision files, `derivs history oi` beyond REST's 30 days).
OiSource = Literal["poll", "history", "archive"]
OI_SOURCES: tuple[OiSource, ...] = ("poll", "history", "archive")


class OpenInterest(Event, frozen=True, kw_only=True, tag="open_interest"):
    """Open interest in base-asset units, one side counted (README: units registry).

    `source` says where the row came from and `period_s` what time it covers: 0 for a poll (the
    figure at `ts_event`), the bucket length for history (300 for 5-minute rows, `ts_event` =
    the bucket's timestamp as the venue gives it). The defaults are a poll's, so the collectors'
    polling code sets neither.
    """

    open_interest: NonNegative
    open_interest_value: NonNegative  # USD (quote) value
    source: OiSource = "poll"
    period_s: Annotated[int, msgspec.Meta(ge=0, le=7 * 86_400)] = 0

    def __post_init__(self) -> None:
        # msgspec turns this into a validation error when decoding, so the validator refuses it
        if (self.source == "poll") != (self.period_s == 0):
            raise ValueError(f"open interest with source {self.source!r} and period_s {self.period_s}: "
                             "a poll covers no period (0), history and archive rows cover one (> 0)")


class FundingRate(Event, frozen=True, kw_only=True, tag="funding_rate"):
    """A funding rate: a live estimate (`settled=False`) or a settled history row.

    The catalog keeps them apart (issue 15.2): live estimates become Nautilus's
    `FundingRateUpdate` (+ `FundingRateInfo`), settled rows a `FundingSettlement` of their own,
    with `ts_event` = the settlement time. `rate` is a fraction per `interval_minutes`; the
    annualized and 8-hour figures are derived where it is stored or shown (`messages/funding.py`).
    """

    rate: Rate
    interval_minutes: Annotated[int, msgspec.Meta(gt=0, le=24 * 60)]
    next_funding_ns: NanosTs | None = None
    predicted_rate: Rate | None = None  # None where the venue publishes no prediction
    mark_price: Positive | None = None
    index_price: Positive | None = None
    settled: bool = False


class Instrument(Event, frozen=True, kw_only=True, tag="instrument"):
    """A linear perpetual's definition: the fields of Nautilus's `CryptoPerpetual`, valued as
    NautilusTrader 1.231's own adapter for the venue values them from the same venue item
    (`venues/<venue>.py`, checked by `tests/integration/test_instruments_golden.py`).

    Decimal values are strings exactly as Nautilus prints them ("0.10": precision 2), so that
    nothing is rounded or re-scaled on the way to the catalog. None = Nautilus leaves it unset;
    the other defaults are the values Nautilus's `CryptoPerpetual` takes when given none.
    """

    raw_symbol: Name  # the venue's own id: BTCUSDT, BTC
    base: Name
    quote: Name
    settle: Name
    price_precision: Annotated[int, msgspec.Meta(ge=0, le=16)]
    size_precision: Annotated[int, msgspec.Meta(ge=0, le=16)]
    price_increment: PositiveDecimal
    size_increment: PositiveDecimal
    multiplier: PositiveDecimal = "1"
    lot_size: PositiveDecimal = "1"  # what Nautilus's CryptoPerpetual takes when its adapter passes none
    min_quantity: NonNegativeDecimal | None = None
    max_quantity: PositiveDecimal | None = None
    min_notional: NonNegativeDecimal | None = None  # in the quote currency
    max_notional: PositiveDecimal | None = None
    min_price: NonNegativeDecimal | None = None
    max_price: PositiveDecimal | None = None
    margin_init: NonNegativeDecimal = "0"
    margin_maint: NonNegativeDecimal = "0"
    maker_fee: Fee = "0"
    taker_fee: Fee = "0"
    max_leverage: NonNegative | None = None  # kept in the row's `info` (Nautilus has no field for it)


class Liquidation(Event, frozen=True, kw_only=True, tag="liquidation"):
    """One forced liquidation on the venue.

    `side` is the side of the *position* that was liquidated (LONG/SHORT), never the venue's
    raw BUY/SELL (Binance reports the forced order's side, Bybit the position's side).
    `quantity` is in base units, `price` the venue's liquidation price, `value` = quantity x
    price in USD (quote). `ts_event` is the venue's time of the liquidation.
    """

    side: Literal["LONG", "SHORT"]
    quantity: Positive
    price: Positive
    value: Positive  # USD (quote) = quantity x price


class Gap(Event, frozen=True, kw_only=True, tag="gap"):
    """A window [ts_event, end_ns] in which `stream` of this instrument may be missing data.

    Recorded for a lost connection (ts_event = the last frame received, end_ns = the venue's
    acknowledgement of the new subscription), a collector restart (from the last acknowledged
    event to the new subscription) and an outbox overflow. `ts_recv` is when it was recorded.
    """

    stream: Literal["liquidations", "open_interest", "funding", "instruments"]
    end_ns: NanosTs
    reason: Annotated[str, msgspec.Meta(max_length=500)]


class Malformed(Event, frozen=True, kw_only=True, tag="malformed"):
    """Something a venue sent for this instrument that could not be normalized (missing field,
    wrong type, not JSON...). Sent like any event so the failure is accounted for per item; the
    validator always turns it into a `Rejected` dead letter with `reason`, never into data.

    `ts_event` = `ts_recv` (when the bad answer arrived); `raw` is an excerpt of what was sent.
    """

    reason: Annotated[str, msgspec.Meta(max_length=1000)]
    raw: Annotated[str, msgspec.Meta(max_length=2000)] = ""


AnyEvent = OpenInterest | FundingRate | Instrument | Liquidation | Gap | Malformed


E = TypeVar("E", bound=Event)


def checked(event_type: type[E], **fields: Any) -> E:
    """An event built with its constraints checked (a plain constructor checks none); a bad value
    raises msgspec.ValidationError naming the field, e.g. "Expected `float` >= 0.0 - at `$.open_interest`"."""
    return msgspec.convert(fields, event_type)
