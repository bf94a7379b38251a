"""Binance USDT-M futures (ccxt `binanceusdm`).

- Open interest: GET /fapi/v1/openInterest per symbol (base units, venue time); its USD value is
  OI x mark price from GET /fapi/v1/premiumIndex, fetched in the same poll.
- Funding: GET /fapi/v1/premiumIndex (`lastFundingRate` is the current period's rate, settled at
  `nextFundingTime`); the interval comes from GET /fapi/v1/fundingInfo, which lists only the
  symbols whose interval is not the default 8 h.
- Nautilus id: `BTCUSDT-PERP.BINANCE`.
"""

import asyncio
import math
import time
from typing import Any

import ccxt
from loguru import logger

from actors.recording import operation
from actors.venues.base import Market, MalformedItem, VenueAdapter, field, info_of, ms_to_ns, now_ns, reason_of
from messages.events import FundingRate, Malformed, OpenInterest

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


class BinanceAdapter(VenueAdapter):
    name = "binance"
    venue = "BINANCE"
    ccxt_id = "binanceusdm"
    env_prefix = "BINANCE"
    options = {"fetchCurrencies": False}  # currencies need keys and are not used

    def __init__(self) -> None:
        self._intervals: dict[str, int] = {}  # symbol -> minutes, only non-default ones
        # monotonic time of the last fundingInfo fetch; None = never (monotonic() counts from boot,
        # so a 0.0 start would skip the first fetch for the first hour of a freshly booted host)
        self._intervals_at: float | None = None
        self._retry_at: dict[str, float] = {}  # delisted symbol -> when to ask again (monotonic)

    def instrument_id(self, market: Market) -> str:
        return f"{market['id']}-PERP.BINANCE"

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
