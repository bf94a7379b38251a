"""Binance USDT-M futures (ccxt `binanceusdm`).

- Open interest: GET /fapi/v1/openInterest per symbol (base units, venue time); its USD value is
  OI x mark price from GET /fapi/v1/premiumIndex, fetched in the same poll.
- Funding: GET /fapi/v1/premiumIndex (`lastFundingRate` is the current period's rate, settled at
  `nextFundingTime`); the interval comes from GET /fapi/v1/fundingInfo, which lists only the
  symbols whose interval is not the default 8 h.
- Nautilus id: `BTCUSDT-PERP.BINANCE`.
"""

import asyncio
import time
from typing import Any

from actors.venues.base import Market, VenueAdapter, ms_to_ns, now_ns
from messages.events import FundingRate, OpenInterest

DEFAULT_INTERVAL_MIN = 8 * 60
INTERVALS_TTL_S = 3600.0


def normalize_open_interest(oi: dict, mark_price: float, market: Market, instrument_id: str, ts_recv: int) -> OpenInterest:
    amount = oi["openInterestAmount"]
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
        rate=fr["fundingRate"],
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
        self._intervals_at = 0.0

    def instrument_id(self, market: Market) -> str:
        return f"{market['id']}-PERP.BINANCE"

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest]:
        async def one(market: Market) -> OpenInterest:
            oi, fr = await asyncio.gather(
                client.fetch_open_interest(market["symbol"]), client.fetch_funding_rate(market["symbol"])
            )
            return normalize_open_interest(oi, fr["markPrice"], market, self.instrument_id(market), now_ns())

        return list(await asyncio.gather(*(one(m) for m in markets)))

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate]:
        await self._refresh_intervals(client)
        rates = await client.fetch_funding_rates([m["symbol"] for m in markets])
        ts_recv = now_ns()
        return [
            normalize_funding(
                rates[m["symbol"]],
                self._intervals.get(m["symbol"], DEFAULT_INTERVAL_MIN),
                m,
                self.instrument_id(m),
                ts_recv,
            )
            for m in markets
            if m["symbol"] in rates
        ]

    async def _refresh_intervals(self, client: Any) -> None:
        if time.monotonic() - self._intervals_at < INTERVALS_TTL_S:
            return
        infos = await client.fetch_funding_intervals()
        self._intervals = {
            symbol: int(info["info"]["fundingIntervalHours"]) * 60
            for symbol, info in infos.items()
            if info.get("info", {}).get("fundingIntervalHours")
        }
        self._intervals_at = time.monotonic()
