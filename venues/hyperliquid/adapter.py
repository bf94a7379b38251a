"""Hyperliquid perpetuals (ccxt `hyperliquid`): markets, instrument definitions, current open
interest and funding, and the emulator's URLs. History: `history.py`; limits: `limits.py`.

- Open interest and funding both come from POST /info {"type": "metaAndAssetCtxs"} (one call, all
  coins, weight 20 of 1200/min): `openInterest` in coin units, USD value = OI x `markPx`. The
  payload has no timestamp, so `ts_event` is the receive time.
- `funding` is the current hourly rate; the venue's own prediction for the next settlement comes
  from POST /info {"type": "predictedFundings"} (entry "HlPerp"; no ccxt method).
- Nautilus id: `BTC-USD-PERP.HYPERLIQUID`; the definition as Nautilus builds it (`instrument_definition`).
- `symbols: all` (`collectable`): the perp universe of `meta` without the coins marked `isDelisted`.
"""

import asyncio
from typing import Any

import msgspec

from messages.events import FundingRate, Malformed, OpenInterest, checked
from loguru import logger

from venues.base import Market, UnknownSymbol, info_of, ms_to_ns
from venues.client import received_ns, set_received, timed
from venues.hyperliquid.history import INTERVAL_MIN, HyperliquidHistory
from venues.hyperliquid.liquidations import HyperliquidLiquidations
from venues.hyperliquid.limits import LIMITS
from venues.hyperliquid.schemas import HyperliquidAssetCtx, HyperliquidPerp, HyperliquidPredictedFunding, PredictedFundingsItem
from venues.recording import operation
from venues.schemas import decode

PERP_MAX_DECIMALS = 6  # the venue's price rule for perps: at most 6 - szDecimals decimals
MIN_NOTIONAL_USD = "10"


def tick(decimals: int) -> str:
    """10^-decimals as Nautilus prints it (3 -> "0.001", 0 -> "1")."""
    return "1" if decimals == 0 else f"0.{'0' * (decimals - 1)}1"


def instrument_definition(raw: Any) -> dict:
    """`Instrument` fields of one `meta` universe item, as NautilusTrader 1.231's Hyperliquid
    adapter sets them (Rust only: `parse_perp_instruments` + `create_instrument_from_def` in
    crates/adapters/hyperliquid/src/http/parse.rs): price decimals 6 - szDecimals whatever the
    price, quote USD settled in USDC, min notional 10 USD, everything else Nautilus's default."""
    item = decode(raw, HyperliquidPerp, "meta universe")
    pp = max(0, PERP_MAX_DECIMALS - item.sz_decimals)
    return dict(base=item.name, quote="USD", settle="USDC", price_precision=pp, size_precision=item.sz_decimals,
                price_increment=tick(pp), size_increment=tick(item.sz_decimals), min_notional=MIN_NOTIONAL_USD)


def normalize_open_interest(ctx: Any, market: Market, instrument_id: str, ts_recv: int) -> OpenInterest:
    """One coin of metaAndAssetCtxs -> OpenInterest valued at the mark price, timed at receipt."""
    item = decode(ctx, HyperliquidAssetCtx, "metaAndAssetCtxs")
    return checked(
        OpenInterest,
        venue="HYPERLIQUID",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ts_recv,
        ts_recv=ts_recv,
        open_interest=item.open_interest,
        open_interest_value=item.open_interest * item.mark_px,
    )


def normalize_funding(ctx: Any, predicted: Any, next_hour_ms: int | None, market: Market, instrument_id: str,
                      ts_recv: int) -> FundingRate:
    """One coin of metaAndAssetCtxs and its predictedFundings "HlPerp" entry (None: none) -> the
    current hourly FundingRate; without a prediction the next settlement is `next_hour_ms`."""
    item = decode(ctx, HyperliquidAssetCtx, "metaAndAssetCtxs")
    pred = decode(predicted, HyperliquidPredictedFunding, "predictedFundings") if predicted else None
    return checked(
        FundingRate,
        venue="HYPERLIQUID",
        symbol=market["symbol"],
        instrument_id=instrument_id,
        ts_event=ts_recv,
        ts_recv=ts_recv,
        rate=item.funding,
        interval_minutes=(pred.funding_interval_hours or 1) * 60 if pred else INTERVAL_MIN,
        next_funding_ns=ms_to_ns((pred.next_funding_time if pred else None) or next_hour_ms),
        predicted_rate=pred.funding_rate if pred else None,
        mark_price=item.mark_px,
        index_price=item.oracle_px,
        settled=False,
    )


def predicted_by_coin(response: Any) -> dict[str, Any]:
    """predictedFundings -> {coin: Hyperliquid's own entry}. Other venues' entries are ignored;
    an item that is not [coin, [[venue, entry], ...]] gives its coin no prediction."""
    out: dict[str, Any] = {}
    for raw in response if isinstance(response, list) else []:
        try:
            coin, entries = msgspec.convert(raw, PredictedFundingsItem)
        except msgspec.ValidationError:
            continue
        for venue, entry in entries:
            if venue == "HlPerp" and entry is not None:
                out[coin] = entry
    return out


class HyperliquidAdapter(HyperliquidHistory):
    name = "hyperliquid"
    venue = "HYPERLIQUID"
    ccxt_id = "hyperliquid"
    env_prefix = "HYPERLIQUID"
    options = {"fetchMarkets": {"types": ["swap"]}}  # no spot markets: 2 requests
    limits = LIMITS
    liquidations = HyperliquidLiquidations()  # the liquidation stream's view of the venue

    @classmethod
    def sandbox_config(cls, base_url: str) -> dict[str, Any]:
        http, ws = base_url.rstrip("/"), cls.ws_url(base_url)
        return {
            "urls": {"api": {"public": http, "private": http, "ws": {"public": f"{ws}/ws"}}},
            # Default types add spot and hip3 (perpDexs + one call per dex); swap = 2 calls.
            "options": {"fetchMarkets": {"types": ["swap"]}},
        }

    def instrument_id(self, market: Market) -> str:
        return f"{market['baseName']}-USD-PERP.HYPERLIQUID"

    def definition(self, item: Any) -> dict:
        return instrument_definition(item)

    def collectable(self, markets: dict[str, Market]) -> dict[str, Market]:
        """The perp universe without delisted coins (`isDelisted` of the `meta` item)."""
        return {s: m for s, m in self.perpetuals(markets).items() if not (m.get("info") or {}).get("isDelisted")}

    def raw_symbol(self, market: Market) -> str:
        return market["baseName"]  # ccxt's id is the asset index ("0"); the coin name is what users know

    def resolve(self, markets: dict[str, Market], text: str) -> Market:
        """Also a Binance/Bybit-style name: DOGEUSDT (or DOGEUSDC, DOGE-USDT) is the coin DOGE
        here (Hyperliquid quotes in USD, settles in USDC), said in the log."""
        try:
            return super().resolve(markets, text)
        except UnknownSymbol as unknown:
            wanted = text.strip().upper()
            coin = next((wanted.removesuffix(q).rstrip("-/") for q in ("USDT", "USDC") if wanted.endswith(q)), "")
            if not coin:
                raise
            try:
                market = super().resolve(markets, coin)
            except UnknownSymbol:
                raise unknown from None
            logger.warning("{} on HYPERLIQUID is its coin {} (quoted in USD, settled in USDC)", text, self.raw_symbol(market))
            return market

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest | Malformed]:
        with operation("open_interest"):
            return await self.per_symbol(client.fetch_funding_rates([m["symbol"] for m in markets]), markets,
                                         "metaAndAssetCtxs",
                                         lambda fr, m, ts: normalize_open_interest(info_of(fr), m, self.instrument_id(m), ts))

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate | Malformed]:
        predicted: dict[str, Any] = {}

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
                info_of(fr), predicted.get(m["baseName"]), fr.get("fundingTimestamp"), m, self.instrument_id(m), ts))
