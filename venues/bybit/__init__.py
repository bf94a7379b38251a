"""Bybit v5 linear perpetuals (ccxt `bybit`).

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
- Nautilus id: `BTCUSDT-LINEAR.BYBIT`; the definition as Nautilus builds it (`instrument_definition`).
"""

from typing import Any

from venues.recording import operation
from venues.base import Market, VenueAdapter, exact, field, ms_to_ns, now_ns, number, places
from messages.events import FundingRate, Malformed, OpenInterest
from venues.bybit.liquidations import BybitLiquidations


# Nautilus's Bybit adapter without API keys: fee rate 0.001 / 0.001, margins 0.1 / 0.1.
NAUTILUS_FEE = "0.001"
NAUTILUS_MARGIN = "0.1"


def instrument_definition(item: dict) -> dict:
    """`Instrument` fields of one instruments-info item, as NautilusTrader 1.231's Bybit adapter
    (Rust `parse_linear_instrument`) sets them: every number keeps the precision it is written
    with ("0.10" -> 2, maxOrderQty "1190.000" -> 3), lot size = qtyStep."""
    price, lot = item["priceFilter"], item["lotSizeFilter"]
    return dict(
        base=item["baseCoin"], quote=item["quoteCoin"], settle=item.get("settleCoin") or item["quoteCoin"],
        price_precision=places(price["tickSize"]), size_precision=places(lot["qtyStep"]),
        price_increment=exact(price["tickSize"]), size_increment=exact(lot["qtyStep"]), lot_size=exact(lot["qtyStep"]),
        max_quantity=exact(lot["maxOrderQty"]), min_quantity=exact(lot["minOrderQty"]),
        min_notional=exact(lot["minNotionalValue"]) if lot.get("minNotionalValue") else None,
        max_price=exact(price["maxPrice"]), min_price=exact(price["minPrice"]),
        margin_init=NAUTILUS_MARGIN, margin_maint=NAUTILUS_MARGIN, maker_fee=NAUTILUS_FEE, taker_fee=NAUTILUS_FEE,
    )


def one_side(row: dict, field: str = "openInterest") -> float:
    """One side of a Bybit OI figure (`openInterest` or `openInterestValue`, both two-sided)."""
    single_key = "single" + field[0].upper() + field[1:]
    if row.get(single_key) not in (None, ""):
        return number(row, single_key)
    return number(row, field) / 2


def normalize_open_interest(fr: dict, market: Market, instrument_id: str, ts_recv: int) -> OpenInterest:
    info = fr["info"]
    ts_event = ms_to_ns(fr.get("timestamp")) or ts_recv
    return OpenInterest(
        venue="BYBIT",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ts_event,
        ts_recv=ts_recv,
        open_interest=one_side(info),
        open_interest_value=one_side(info, "openInterestValue"),
    )


def normalize_funding(fr: dict, market: Market, instrument_id: str, ts_recv: int) -> FundingRate:
    return FundingRate(
        venue="BYBIT",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ms_to_ns(fr.get("timestamp")) or ts_recv,
        ts_recv=ts_recv,
        rate=field(fr, "fundingRate", "fundingRate"),
        interval_minutes=int(market["info"].get("fundingInterval") or 480),
        next_funding_ns=ms_to_ns(fr.get("fundingTimestamp")),
        predicted_rate=None,  # tickers' fundingRate already is the rate to be settled next
        mark_price=fr.get("markPrice"),
        index_price=fr.get("indexPrice"),
        settled=False,
    )


class BybitAdapter(VenueAdapter):
    name = "bybit"
    venue = "BYBIT"
    ccxt_id = "bybit"
    env_prefix = "BYBIT"
    options = {"fetchMarkets": {"types": ["linear"]}}  # 2 requests instead of 11
    liquidations = BybitLiquidations()  # the liquidation stream's view of the venue

    def definition(self, item: dict) -> dict:
        return instrument_definition(item)

    def instrument_id(self, market: Market) -> str:
        return f"{market['id']}-LINEAR.BYBIT"

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest | Malformed]:
        with operation("open_interest"):
            return await self.per_symbol(client.fetch_funding_rates([m["symbol"] for m in markets]), markets, "tickers",
                                         lambda fr, m, ts: normalize_open_interest(fr, m, self.instrument_id(m), ts))

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate | Malformed]:
        with operation("funding"):
            return await self.per_symbol(client.fetch_funding_rates([m["symbol"] for m in markets]), markets, "tickers",
                                         lambda fr, m, ts: normalize_funding(fr, m, self.instrument_id(m), ts))
