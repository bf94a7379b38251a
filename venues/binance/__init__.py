"""Binance USDT-M futures (ccxt `binanceusdm`).

- Open interest: GET /fapi/v1/openInterest per symbol (base units, venue time); its USD value is
  OI x mark price from GET /fapi/v1/premiumIndex, fetched in the same poll.
- Funding: GET /fapi/v1/premiumIndex (`lastFundingRate` is the current period's rate, settled at
  `nextFundingTime`); the interval comes from GET /fapi/v1/fundingInfo, which lists only the
  symbols whose interval is not the default 8 h.
- Nautilus id: `BTCUSDT-PERP.BINANCE`; the definition as Nautilus builds it (`instrument_definition`).
"""

import asyncio
import math
import time
from typing import Any

import ccxt
from loguru import logger

from venues.recording import operation
from venues.base import (Market, MalformedItem, VenueAdapter, at_precision, exact, field, info_of, ms_to_ns, now_ns,
                                places, reason_of)
from messages.events import FundingRate, Malformed, OpenInterest
from venues.binance.liquidations import BinanceLiquidations

DEFAULT_INTERVAL_MIN = 8 * 60
DELISTED_RETRY_S = 600.0  # a symbol the venue calls invalid is asked for again this rarely
INTERVALS_TTL_S = 3600.0


def normalize_open_interest(oi: dict, mark_price: float, market: Market, instrument_id: str, ts_recv: int) -> OpenInterest:
    amount = field(oi, "openInterestAmount", "openInterest")
    if not (isinstance(mark_price, int | float) and math.isfinite(mark_price)):
        raise MalformedItem(f"markPrice of premiumIndex is {mark_price!r}: the USD value cannot be computed")
    return OpenInterest(
        venue="BINANCE",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ms_to_ns(oi.get("timestamp")) or ts_recv,
        ts_recv=ts_recv,
        open_interest=amount,
        open_interest_value=amount * mark_price,
    )


def normalize_funding(fr: dict, interval_minutes: int, market: Market, instrument_id: str, ts_recv: int) -> FundingRate:
    return FundingRate(
        venue="BINANCE",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ms_to_ns(fr.get("timestamp")) or ts_recv,
        ts_recv=ts_recv,
        rate=field(fr, "fundingRate", "lastFundingRate"),
        interval_minutes=interval_minutes,
        next_funding_ns=ms_to_ns(fr.get("fundingTimestamp")),
        predicted_rate=None,  # Binance publishes no separate prediction
        mark_price=fr.get("markPrice"),
        index_price=fr.get("indexPrice"),
        settled=False,
    )


# Without API keys Nautilus's provider takes fee tier 0 of its own table (maker, taker).
NAUTILUS_FEES = ("0.000200", "0.000500")


def instrument_definition(item: dict) -> dict:
    """`Instrument` fields of one exchangeInfo symbol, as NautilusTrader 1.231's
    `BinanceFuturesInstrumentProvider._parse_instrument` sets them: precisions from the tick and
    step strings as written ("0.10" -> 2), limits from PRICE_FILTER / LOT_SIZE / MIN_NOTIONAL
    at those precisions, margins 1 / 1 ("Binance docs: ignore API values"), lot size not given."""
    filters = {f["filterType"]: f for f in item["filters"]}
    price, lot, notional = filters["PRICE_FILTER"], filters["LOT_SIZE"], filters.get("MIN_NOTIONAL")
    pp, sp = places(price["tickSize"]), places(lot["stepSize"])
    settle = {item["baseAsset"]: item["baseAsset"], item["quoteAsset"]: item["quoteAsset"]}.get(item["marginAsset"])
    if settle is None:
        raise MalformedItem(f"marginAsset {item['marginAsset']!r} is neither the base nor the quote asset")
    return dict(
        base=item["baseAsset"], quote=item["quoteAsset"], settle=settle,
        price_precision=pp, size_precision=sp, price_increment=exact(price["tickSize"]), size_increment=exact(lot["stepSize"]),
        max_quantity=at_precision(lot["maxQty"], sp), min_quantity=at_precision(lot["minQty"], sp),
        min_notional=exact(notional["notional"]) if notional else None,
        max_price=at_precision(price["maxPrice"], pp), min_price=at_precision(price["minPrice"], pp),
        margin_init="1", margin_maint="1", maker_fee=NAUTILUS_FEES[0], taker_fee=NAUTILUS_FEES[1],
    )


class BinanceAdapter(VenueAdapter):
    name = "binance"
    venue = "BINANCE"
    ccxt_id = "binanceusdm"
    env_prefix = "BINANCE"
    options = {"fetchCurrencies": False}  # currencies need keys and are not used
    liquidations = BinanceLiquidations()  # the liquidation stream's view of the venue

    def __init__(self) -> None:
        self._intervals: dict[str, int] = {}  # symbol -> minutes, only non-default ones
        # monotonic time of the last fundingInfo fetch; None = never (monotonic() counts from boot,
        # so a 0.0 start would skip the first fetch for the first hour of a freshly booted host)
        self._intervals_at: float | None = None
        self._retry_at: dict[str, float] = {}  # delisted symbol -> when to ask again (monotonic)

    def instrument_id(self, market: Market) -> str:
        return f"{market['id']}-PERP.BINANCE"

    def definition(self, item: dict) -> dict:
        return instrument_definition(item)

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest | Malformed]:
        async def one(market: Market) -> OpenInterest | Malformed | None:
            try:
                oi, fr = await asyncio.gather(
                    client.fetch_open_interest(market["symbol"]), client.fetch_funding_rate(market["symbol"])
                )
            except ccxt.BadSymbol as exc:  # delisted while we run: skip it, look again now and then
                self._delisted(market, exc)
                return None
            except ccxt.BadResponse as exc:  # ccxt could not read the answer
                return self.unparsable([market], exc, now_ns())[0]
            except ccxt.BaseError:
                raise  # the venue is down, busy, in maintenance or refusing: the collector backs off
            except Exception as exc:  # noqa: BLE001 - ccxt choked on the answer itself
                return self.unparsable([market], exc, now_ns())[0]
            ts_recv = now_ns()
            return self.safely(market, {"openInterest": info_of(oi), "premiumIndex": info_of(fr)}, ts_recv,
                               lambda: normalize_open_interest(oi, fr["markPrice"], market, self.instrument_id(market), ts_recv))

        with operation("open_interest"):
            events = await asyncio.gather(*(one(m) for m in self._listed(markets)))
        return [e for e in events if e is not None]

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate | Malformed]:
        with operation("funding"):
            await self._refresh_intervals(client)
            try:
                rates = await client.fetch_funding_rates([m["symbol"] for m in markets])
            except ccxt.BadResponse as exc:
                return self.unparsable(markets, exc, now_ns())
            except ccxt.BaseError:
                raise
            except Exception as exc:  # noqa: BLE001 - ccxt choked on the answer itself
                return self.unparsable(markets, exc, now_ns())
        ts_recv = now_ns()
        if not isinstance(rates, dict) or not rates:  # an answer ccxt read as nothing: not JSON, or not a list
            return self.unparsable(markets, MalformedItem("premiumIndex answer holds no rates (not JSON?)"), ts_recv)
        self.absent(markets, rates, "premiumIndex")
        return [
            self.safely(m, info_of(rates[m["symbol"]]), ts_recv, lambda m=m: normalize_funding(
                rates[m["symbol"]], self._intervals.get(m["symbol"], DEFAULT_INTERVAL_MIN), m, self.instrument_id(m), ts_recv))
            for m in markets
            if m["symbol"] in rates
        ]

    def _listed(self, markets: list[Market]) -> list[Market]:
        """Markets to ask for: a delisted one only once its retry time has come."""
        now = time.monotonic()
        return [m for m in markets if self._retry_at.get(m["symbol"], 0.0) <= now]

    def _delisted(self, market: Market, exc: Exception) -> None:
        self._retry_at[market["symbol"]] = time.monotonic() + DELISTED_RETRY_S
        logger.bind(venue=self.venue).error("BINANCE {}: the venue answers invalid symbol (delisted?): skipped, "
                                            "asked again in {:.0f} s ({})", market["id"], DELISTED_RETRY_S, reason_of(exc))

    async def _refresh_intervals(self, client: Any) -> None:
        if self._intervals_at is not None and time.monotonic() - self._intervals_at < INTERVALS_TTL_S:
            return
        infos = await client.fetch_funding_intervals()
        self._intervals = {
            symbol: int(info["info"]["fundingIntervalHours"]) * 60
            for symbol, info in infos.items()
            if info.get("info", {}).get("fundingIntervalHours")
        }
        self._intervals_at = time.monotonic()
