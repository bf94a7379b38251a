"""Binance USDT-M futures (ccxt `binanceusdm`): markets, instrument definitions, current open
interest and funding, and the emulator's URLs. History paging: `history.py`; limits: `limits.py`.

- Open interest: GET /fapi/v1/openInterest per symbol (base units, venue time; Binance has no
  bulk call); its USD value is OI x mark price from GET /fapi/v1/premiumIndex, fetched in the
  same poll. Up to PER_SYMBOL_UP_TO symbols both are asked per symbol at once (weight 1 each);
  beyond, one premiumIndex without a symbol (weight 10) gives every mark and the openInterest
  calls are spread evenly over the interval (`poll_open_interest`): 500 symbols at 60 s are
  510 weight a minute of the 2,400, and never a burst (venues/budget.py paces what is left).
- `symbols: all` (`collectable`): every PERPETUAL in status TRADING (USDT- and USDC-margined: the
  USDT-M futures API lists both); quarterlies and symbols settling or closed are not.
- Funding: GET /fapi/v1/premiumIndex (`lastFundingRate` is the current period's rate, settled at
  `nextFundingTime`); the interval comes from GET /fapi/v1/fundingInfo, which lists only the
  symbols whose interval is not the default 8 h.
- Nautilus id: `BTCUSDT-PERP.BINANCE`; the definition as Nautilus builds it (`instrument_definition`).
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import ccxt
from loguru import logger

from messages.events import FundingRate, Malformed, OpenInterest, checked
from venues.base import Market, info_of, ms_to_ns, now_ns, reason_of
from venues.binance.history import DEFAULT_INTERVAL_MIN, BinanceHistory
from venues.binance.liquidations import BinanceLiquidations
from venues.binance.limits import LIMITS
from venues.binance.schemas import (BinanceLotSize, BinanceMinNotional, BinanceOpenInterest,
                                    BinancePremiumIndex, BinancePriceFilter, BinanceSymbol)
from venues.recording import operation
from venues.schemas import MalformedItem, at_precision, blank_none, decode, places

DELISTED_RETRY_S = 600.0  # a symbol the venue calls invalid is asked for again this rarely
INTERVALS_TTL_S = 3600.0  # fundingInfo again after this, or at once when a symbol it was not asked for appears
PER_SYMBOL_UP_TO = 10  # premiumIndex per symbol weighs 1, for all 10: per symbol up to 10 symbols
SPREAD_OF_INTERVAL = 0.9  # the openInterest calls of one poll end within this part of the interval
MAX_IN_FLIGHT = 50  # openInterest requests of one poll outstanding at once (a slow venue is not flooded)


def normalize_open_interest(oi: Any, premium: Any, market: Market, instrument_id: str, ts_recv: int) -> OpenInterest:
    """/fapi/v1/openInterest + /fapi/v1/premiumIndex of one symbol (the venue's items, as ccxt
    keeps them in `info`) -> OpenInterest valued at the mark price."""
    item = decode(oi, BinanceOpenInterest, "openInterest")
    mark = decode(premium, BinancePremiumIndex, "premiumIndex").mark_price
    return checked(
        OpenInterest,
        venue="BINANCE",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ms_to_ns(item.time) or ts_recv,
        ts_recv=ts_recv,
        open_interest=item.open_interest,
        open_interest_value=item.open_interest * mark,
    )


def normalize_funding(premium: Any, interval_minutes: int, market: Market, instrument_id: str, ts_recv: int) -> FundingRate:
    """One /fapi/v1/premiumIndex item -> the current period's FundingRate."""
    item = decode(premium, BinancePremiumIndex, "premiumIndex")
    return checked(
        FundingRate,
        venue="BINANCE",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ms_to_ns(item.time) or ts_recv,
        ts_recv=ts_recv,
        rate=item.last_funding_rate,
        interval_minutes=interval_minutes,
        next_funding_ns=ms_to_ns(item.next_funding_time),
        predicted_rate=None,  # Binance publishes no separate prediction
        mark_price=item.mark_price,
        index_price=blank_none(item.index_price),
        settled=False,
    )


# Without API keys Nautilus's provider takes fee tier 0 of its own table (maker, taker).
NAUTILUS_FEES = ("0.000200", "0.000500")


def instrument_definition(raw: Any) -> dict:
    """`Instrument` fields of one exchangeInfo symbol, as NautilusTrader 1.231's
    `BinanceFuturesInstrumentProvider._parse_instrument` sets them: precisions from the tick and
    step strings as written ("0.10" -> 2), limits from PRICE_FILTER / LOT_SIZE / MIN_NOTIONAL
    at those precisions, margins 1 / 1 ("Binance docs: ignore API values"), lot size not given."""
    item = decode(raw, BinanceSymbol, "exchangeInfo symbol")
    filters = {f.get("filterType"): f for f in item.filters}
    for kind in ("PRICE_FILTER", "LOT_SIZE"):
        if kind not in filters:
            raise MalformedItem(f"exchangeInfo symbol: filters: {kind} missing")
    price = decode(filters["PRICE_FILTER"], BinancePriceFilter, "PRICE_FILTER")
    lot = decode(filters["LOT_SIZE"], BinanceLotSize, "LOT_SIZE")
    notional = decode(filters["MIN_NOTIONAL"], BinanceMinNotional, "MIN_NOTIONAL") if "MIN_NOTIONAL" in filters else None
    pp, sp = places(price.tick_size), places(lot.step_size)
    settle = {item.base_asset: item.base_asset, item.quote_asset: item.quote_asset}.get(item.margin_asset)
    if settle is None:
        raise MalformedItem(f"marginAsset {item.margin_asset!r} is neither the base nor the quote asset")
    return dict(
        base=item.base_asset, quote=item.quote_asset, settle=settle,
        price_precision=pp, size_precision=sp, price_increment=price.tick_size, size_increment=lot.step_size,
        max_quantity=at_precision(lot.max_qty, sp), min_quantity=at_precision(lot.min_qty, sp),
        min_notional=notional.notional if notional else None,
        max_price=at_precision(price.max_price, pp), min_price=at_precision(price.min_price, pp),
        margin_init="1", margin_maint="1", maker_fee=NAUTILUS_FEES[0], taker_fee=NAUTILUS_FEES[1],
    )


class BinanceAdapter(BinanceHistory):
    name = "binance"
    venue = "BINANCE"
    ccxt_id = "binanceusdm"
    env_prefix = "BINANCE"
    options = {"fetchCurrencies": False}  # currencies need keys and are not used
    limits = LIMITS
    liquidations = BinanceLiquidations()  # the liquidation stream's view of the venue

    def __init__(self) -> None:
        self._intervals: dict[str, int] = {}  # symbol -> minutes, only non-default ones
        # monotonic time of the last fundingInfo fetch; None = never (monotonic() counts from boot,
        # so a 0.0 start would skip the first fetch for the first hour of a freshly booted host)
        self._intervals_at: float | None = None
        self._intervals_for: set[str] = set()  # the symbols of the last fetch
        self._retry_at: dict[str, float] = {}  # delisted symbol -> when to ask again (monotonic)

    @classmethod
    def sandbox_config(cls, base_url: str) -> dict[str, Any]:
        http, ws = base_url.rstrip("/"), cls.ws_url(base_url)
        return {
            "urls": {"api": {
                "fapiPublic": f"{http}/fapi/v1", "fapiPublicV2": f"{http}/fapi/v2", "fapiPublicV3": f"{http}/fapi/v3",
                "fapiPrivate": f"{http}/fapi/v1", "fapiPrivateV2": f"{http}/fapi/v2", "fapiPrivateV3": f"{http}/fapi/v3",
                "fapiData": f"{http}/futures/data",
                # ccxt.pro binance rewrites ".../ws" to ".../market/ws" or ".../public/ws"
                "ws": {"linear": f"{ws}/ws"},
            }},
            # fetchCurrencies would call sapi (api.binance.com) when keys are set: keep it off.
            "options": {"fetchCurrencies": False, "fetchMarkets": {"types": ["linear"]}},
        }

    def instrument_id(self, market: Market) -> str:
        return f"{market['id']}-PERP.BINANCE"

    def collectable(self, markets: dict[str, Market]) -> dict[str, Market]:
        """Every PERPETUAL of the USDT-M futures API in status TRADING (exchangeInfo as ccxt keeps it)."""
        return {s: m for s, m in self.perpetuals(markets).items()
                if (m.get("info") or {}).get("contractType") == "PERPETUAL" and (m.get("info") or {}).get("status") == "TRADING"}

    def definition(self, item: Any) -> dict:
        return instrument_definition(item)

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest | Malformed]:
        with operation("open_interest"):
            events = await asyncio.gather(*(self._open_interest(client, m) for m in self._listed(markets)))
        return [e for e in events if e is not None]

    async def poll_open_interest(self, client: Any, markets: list[Market], interval_s: float,
                                 emit: Callable[[list[Any]], None]) -> None:
        """Up to PER_SYMBOL_UP_TO markets: `fetch_open_interest`. Beyond: every mark price in one
        premiumIndex, then one openInterest request per market, each sent at its own evenly
        spaced instant over SPREAD_OF_INTERVAL of the interval without waiting for the ones
        before (a venue 150 ms away still gets 10 a second), at most MAX_IN_FLIGHT outstanding;
        a market that left `markets` meanwhile is skipped. The first failure ends the poll (the
        collector backs off)."""
        if len(markets) <= PER_SYMBOL_UP_TO:
            emit(await self.fetch_open_interest(client, list(markets)))
            return

        async def one(market: Market) -> None:
            event = await self._open_interest(client, market, marks.get(market["symbol"]))
            if event is not None:
                emit([event])

        with operation("open_interest"):
            marks = await client.fetch_funding_rates()  # premiumIndex without a symbol: every mark price
            todo = self._listed(list(markets))
            step = interval_s * SPREAD_OF_INTERVAL / max(1, len(todo))
            start = time.monotonic()
            try:
                async with asyncio.TaskGroup() as group:
                    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
                    for i, market in enumerate(todo):
                        await asyncio.sleep(max(0.0, start + i * step - time.monotonic()))
                        if not any(m["symbol"] == market["symbol"] for m in markets):
                            continue  # delisted during this poll
                        await in_flight.acquire()
                        group.create_task(one(market)).add_done_callback(lambda _: in_flight.release())
            except ExceptionGroup as failed:  # the first failure, as the collector's backoff and reachability expect it
                raise failed.exceptions[0] from None

    async def _open_interest(self, client: Any, market: Market, mark: Any = None) -> OpenInterest | Malformed | None:
        """One symbol's openInterest, valued at `mark` (a premiumIndex structure; None: asked too)."""
        try:
            if mark is None:
                oi, mark = await asyncio.gather(client.fetch_open_interest(market["symbol"]),
                                                client.fetch_funding_rate(market["symbol"]))
            else:
                oi = await client.fetch_open_interest(market["symbol"])
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
        oi, premium = info_of(oi), info_of(mark)
        return self.safely(market, {"openInterest": oi, "premiumIndex": premium}, ts_recv,
                           lambda: normalize_open_interest(oi, premium, market, self.instrument_id(market), ts_recv))

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate | Malformed]:
        with operation("funding"):
            await self._refresh_intervals(client, markets)
            return await self.per_symbol(client.fetch_funding_rates([m["symbol"] for m in markets]), markets,
                                         "premiumIndex", lambda fr, m, ts: normalize_funding(
                                             info_of(fr), self._intervals.get(m["symbol"], DEFAULT_INTERVAL_MIN), m,
                                             self.instrument_id(m), ts))

    def _listed(self, markets: list[Market]) -> list[Market]:
        """Markets to ask for: a delisted one only once its retry time has come."""
        now = time.monotonic()
        return [m for m in markets if self._retry_at.get(m["symbol"], 0.0) <= now]

    def _delisted(self, market: Market, exc: Exception) -> None:
        self._retry_at[market["symbol"]] = time.monotonic() + DELISTED_RETRY_S
        logger.bind(venue=self.venue).error("BINANCE {}: the venue answers invalid symbol (delisted?): skipped, "
                                            "asked again in {:.0f} s ({})", market["id"], DELISTED_RETRY_S, reason_of(exc))

    async def _refresh_intervals(self, client: Any, markets: list[Market] = ()) -> None:
        """fundingInfo (its own bucket, 500 / 5 min) every INTERVALS_TTL_S, and at once when a
        symbol appears that it was not asked for (a new listing may start at 4 h or 1 h)."""
        symbols = {m["symbol"] for m in markets}
        fresh = self._intervals_at is not None and time.monotonic() - self._intervals_at < INTERVALS_TTL_S
        if fresh and symbols <= self._intervals_for:
            return
        self._intervals = await self.funding_intervals(client)
        self._intervals_at, self._intervals_for = time.monotonic(), symbols
