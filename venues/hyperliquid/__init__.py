"""Hyperliquid perpetuals (ccxt `hyperliquid`).

- Open interest and funding both come from POST /info {"type": "metaAndAssetCtxs"} (one call, all
  coins, weight 20 of 1200/min): `openInterest` in coin units, USD value = OI x `markPx`. The
  payload has no timestamp, so `ts_event` is the receive time.
- `funding` is the current hourly rate; the venue's own prediction for the next settlement comes
  from POST /info {"type": "predictedFundings"} (entry "HlPerp"; no ccxt method).
- Nautilus id: `BTC-USD-PERP.HYPERLIQUID`; the definition as Nautilus builds it (`instrument_definition`).
"""

import asyncio
from typing import Any

from venues.recording import operation
from venues.base import Market, MalformedItem, VenueAdapter, field, ms_to_ns, number, received_ns, set_received, timed
from messages.events import FundingRate, Malformed, OpenInterest
from venues.hyperliquid.liquidations import HyperliquidLiquidations

INTERVAL_MIN = 60
PERP_MAX_DECIMALS = 6  # the venue's price rule for perps: at most 6 - szDecimals decimals
MIN_NOTIONAL_USD = "10"


def tick(decimals: int) -> str:
    """10^-decimals as Nautilus prints it (3 -> "0.001", 0 -> "1")."""
    return "1" if decimals == 0 else f"0.{'0' * (decimals - 1)}1"


def instrument_definition(item: dict) -> dict:
    """`Instrument` fields of one `meta` universe item, as NautilusTrader 1.231's Hyperliquid
    adapter sets them (Rust only: `parse_perp_instruments` + `create_instrument_from_def` in
    crates/adapters/hyperliquid/src/http/parse.rs): price decimals 6 - szDecimals whatever the
    price, quote USD settled in USDC, min notional 10 USD, everything else Nautilus's default."""
    sz = item["szDecimals"]
    if not isinstance(sz, int) or isinstance(sz, bool) or not 0 <= sz <= 16:
        raise MalformedItem(f"szDecimals is not a count of decimals: {sz!r}")
    pp = max(0, PERP_MAX_DECIMALS - sz)
    return dict(base=item["name"], quote="USD", settle="USDC", price_precision=pp, size_precision=sz,
                price_increment=tick(pp), size_increment=tick(sz), min_notional=MIN_NOTIONAL_USD)


def normalize_open_interest(fr: dict, market: Market, instrument_id: str, ts_recv: int) -> OpenInterest:
    info = fr["info"]
    amount = number(info, "openInterest")
    return OpenInterest(
        venue="HYPERLIQUID",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ts_recv,
        ts_recv=ts_recv,
        open_interest=amount,
        open_interest_value=amount * number(info, "markPx"),
    )


def normalize_funding(fr: dict, predicted: dict | None, market: Market, instrument_id: str, ts_recv: int) -> FundingRate:
    next_ms = (predicted or {}).get("nextFundingTime") or fr.get("fundingTimestamp")
    return FundingRate(
        venue="HYPERLIQUID",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ts_recv,
        ts_recv=ts_recv,
        rate=field(fr, "fundingRate", "funding"),
        interval_minutes=int((predicted or {}).get("fundingIntervalHours") or 1) * 60,
        next_funding_ns=ms_to_ns(next_ms),
        predicted_rate=number(predicted, "fundingRate") if predicted else None,
        mark_price=fr.get("markPrice"),
        index_price=fr.get("indexPrice"),  # oraclePx
        settled=False,
    )


def predicted_by_coin(response: list) -> dict[str, dict]:
    """predictedFundings -> {coin: Hyperliquid's own entry}. Other venues' entries are ignored."""
    out: dict[str, dict] = {}
    for item in response if isinstance(response, list) else []:
        try:
            coin, entries = item
            for venue, entry in entries:
                if venue == "HlPerp" and isinstance(entry, dict):
                    out[coin] = entry
        except (TypeError, ValueError):
            continue  # a malformed entry: that coin gets no prediction
    return out


class HyperliquidAdapter(VenueAdapter):
    name = "hyperliquid"
    venue = "HYPERLIQUID"
    ccxt_id = "hyperliquid"
    env_prefix = "HYPERLIQUID"
    options = {"fetchMarkets": {"types": ["swap"]}}  # no spot markets: 2 requests
    liquidations = HyperliquidLiquidations()  # the liquidation stream's view of the venue

    def instrument_id(self, market: Market) -> str:
        return f"{market['baseName']}-USD-PERP.HYPERLIQUID"

    def definition(self, item: dict) -> dict:
        return instrument_definition(item)

    def raw_symbol(self, market: Market) -> str:
        return market["baseName"]  # ccxt's id is the asset index ("0"); the coin name is what users know

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest | Malformed]:
        with operation("open_interest"):
            return await self.per_symbol(client.fetch_funding_rates([m["symbol"] for m in markets]), markets,
                                         "metaAndAssetCtxs",
                                         lambda fr, m, ts: normalize_open_interest(fr, m, self.instrument_id(m), ts))

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate | Malformed]:
        predicted: dict[str, dict] = {}

        async def both() -> Any:
            """Rates (in this task, so its receive time is seen) and predictions side by side."""
            predictions = asyncio.ensure_future(timed(client.publicPostInfo({"type": "predictedFundings"})))
            try:
                rates = await client.fetch_funding_rates([m["symbol"] for m in markets])
            except BaseException:
                predictions.cancel()
                raise
            rates_ns = received_ns()
            answer, predictions_ns = await predictions
            predicted.update(predicted_by_coin(answer))
            set_received(max(rates_ns, predictions_ns))  # ts_recv: when the later of the two arrived
            return rates

        with operation("funding"):
            return await self.per_symbol(both(), markets, "metaAndAssetCtxs", lambda fr, m, ts: normalize_funding(
                fr, predicted.get(m["baseName"]), m, self.instrument_id(m), ts))
