"""Bybit v5 linear perpetuals (ccxt `bybit`): markets, instrument definitions, current open
interest and funding, and the emulator's URLs. History paging: `history.py`; limits: `limits.py`.

- Open interest and funding both come from GET /v5/market/tickers?category=linear (one call for
  all symbols): `openInterest` (base units) and `openInterestValue` (USD) are live, unlike
  /v5/market/open-interest, which gives the last closed 5-minute bucket.
- Stored OI is one side (the project's convention, as Binance reports it). Bybit's `openInterest`
  and `openInterestValue` count both sides, before 2026-06-11 as after (README, units registry:
  documented as "the sum of both sides" since 2023; the 2026-06-11 change added the one-side
  fields and changed only what Bybit's web pages display). So `one_side` takes
  `singleOpenInterest(Value)` when the payload has it and half the two-sided figure otherwise,
  whatever the row's date: one series means one thing on both sides of the date.
- The funding interval is the market's `fundingInterval` (minutes) from instruments-info.
- `symbols: all` (`collectable`): every LinearPerpetual settled in USDT in status Trading (not the
  USDC perpetuals and futures of the same category, not PreLaunch contracts).
- Nautilus id: `BTCUSDT-LINEAR.BYBIT`; the definition as Nautilus builds it (`instrument_definition`).
"""

from typing import Any

from messages.events import FundingRate, Malformed, OpenInterest, checked
from venues.base import Market, info_of, ms_to_ns
from venues.bybit.history import BybitHistory
from venues.bybit.liquidations import BybitLiquidations
from venues.bybit.limits import LIMITS
from venues.bybit.schemas import BybitInstrument, BybitTicker, one_side
from venues.recording import operation
from venues.schemas import blank_none, decode, places

# Nautilus's Bybit adapter without API keys: fee rate 0.001 / 0.001, margins 0.1 / 0.1.
NAUTILUS_FEE = "0.001"
NAUTILUS_MARGIN = "0.1"


def instrument_definition(raw: Any) -> dict:
    """`Instrument` fields of one instruments-info item, as NautilusTrader 1.231's Bybit adapter
    (Rust `parse_linear_instrument`) sets them: every number keeps the precision it is written
    with ("0.10" -> 2, maxOrderQty "1190.000" -> 3), lot size = qtyStep."""
    item = decode(raw, BybitInstrument, "instruments-info")
    price, lot = item.price_filter, item.lot_size_filter
    return dict(
        base=item.base_coin, quote=item.quote_coin, settle=item.settle_coin or item.quote_coin,
        price_precision=places(price.tick_size), size_precision=places(lot.qty_step),
        price_increment=price.tick_size, size_increment=lot.qty_step, lot_size=lot.qty_step,
        max_quantity=lot.max_order_qty, min_quantity=lot.min_order_qty,
        min_notional=blank_none(lot.min_notional_value),
        max_price=price.max_price, min_price=price.min_price,
        margin_init=NAUTILUS_MARGIN, margin_maint=NAUTILUS_MARGIN, maker_fee=NAUTILUS_FEE, taker_fee=NAUTILUS_FEE,
    )


def normalize_open_interest(ticker: Any, time_ms: int | None, market: Market, instrument_id: str, ts_recv: int) -> OpenInterest:
    """One tickers item (`time_ms`: the answer's time) -> OpenInterest, one side."""
    item = decode(ticker, BybitTicker, "tickers")
    return checked(
        OpenInterest,
        venue="BYBIT",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ms_to_ns(time_ms) or ts_recv,
        ts_recv=ts_recv,
        open_interest=one_side(item.single_open_interest, item.open_interest),
        open_interest_value=one_side(item.single_open_interest_value, item.open_interest_value),
    )


def normalize_funding(ticker: Any, time_ms: int | None, interval_minutes: int, market: Market, instrument_id: str,
                      ts_recv: int) -> FundingRate:
    """One tickers item (`time_ms`: the answer's time) -> the FundingRate to be settled next."""
    item = decode(ticker, BybitTicker, "tickers")
    return checked(
        FundingRate,
        venue="BYBIT",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ms_to_ns(time_ms) or ts_recv,
        ts_recv=ts_recv,
        rate=item.funding_rate,
        interval_minutes=interval_minutes,
        next_funding_ns=ms_to_ns(blank_none(item.next_funding_time)),
        predicted_rate=None,  # tickers' fundingRate already is the rate to be settled next
        mark_price=blank_none(item.mark_price),
        index_price=blank_none(item.index_price),
        settled=False,
    )


class BybitAdapter(BybitHistory):
    name = "bybit"
    venue = "BYBIT"
    ccxt_id = "bybit"
    env_prefix = "BYBIT"
    options = {"fetchMarkets": {"types": ["linear"]}}  # 2 requests instead of 11
    limits = LIMITS
    liquidations = BybitLiquidations()  # the liquidation stream's view of the venue

    @classmethod
    def sandbox_config(cls, base_url: str) -> dict[str, Any]:
        http, ws = base_url.rstrip("/"), cls.ws_url(base_url)
        return {
            "urls": {"api": {
                "spot": http, "futures": http, "v2": http, "public": http, "private": http,
                "ws": {"public": {"linear": f"{ws}/v5/public/linear"}},
            }},
            # Default types also load spot/inverse/option (11 calls); linear = 2 calls.
            "options": {"fetchMarkets": {"types": ["linear"]}},
        }

    def definition(self, item: Any) -> dict:
        return instrument_definition(item)

    def instrument_id(self, market: Market) -> str:
        return f"{market['id']}-LINEAR.BYBIT"

    def collectable(self, markets: dict[str, Market]) -> dict[str, Market]:
        """Linear USDT perpetuals in status Trading (instruments-info as ccxt keeps it)."""
        def wanted(info: dict) -> bool:
            return info.get("contractType") == "LinearPerpetual" and info.get("status") == "Trading" and info.get("settleCoin") == "USDT"
        return {s: m for s, m in self.perpetuals(markets).items() if wanted(m.get("info") or {})}

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest | Malformed]:
        with operation("open_interest"):
            return await self.per_symbol(client.fetch_funding_rates([m["symbol"] for m in markets]), markets, "tickers",
                                         lambda fr, m, ts: normalize_open_interest(
                                             info_of(fr), fr.get("timestamp"), m, self.instrument_id(m), ts))

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate | Malformed]:
        with operation("funding"):
            return await self.per_symbol(client.fetch_funding_rates([m["symbol"] for m in markets]), markets, "tickers",
                                         lambda fr, m, ts: normalize_funding(
                                             info_of(fr), fr.get("timestamp"), self.default_funding_interval_minutes(m),
                                             m, self.instrument_id(m), ts))
