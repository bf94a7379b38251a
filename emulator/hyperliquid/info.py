"""Owns Hyperliquid's info API: POST /info {"type": ...} for the perpetual metadata and asset
contexts ccxt's hyperliquid reads, plus predictedFundings (no ccxt method; called as
publicPostInfo) and fundingHistory (`history.py`). Shapes follow emulator/samples/hyperliquid.json.

Hyperliquid payloads carry no timestamp: ccxt leaves timestamps None and computes the next
funding time itself (next full hour), so ground-truth records have ts_ms = null.
"""

from __future__ import annotations

import time

import msgspec
from aiohttp import web
from loguru import logger

from emulator.common import LOG_DETAIL, VenueContext, json_response, stripped
from emulator.hyperliquid.answers import deserialize_error
from emulator.hyperliquid.assets import USDC_TOKEN, VENUE, Asset, assets, meta, number, price
from emulator.hyperliquid.history import HyperliquidHistory
from emulator.market import DAY, HOUR
from emulator.universe import universe_of

KNOWN_TYPES = ("meta", "metaAndAssetCtxs", "spotMeta", "spotMetaAndAssetCtxs", "predictedFundings", "perpDexs",
               "fundingHistory")


def no_book(a: Asset) -> dict:
    """The context of a delisted coin: no book, no open interest, its last price."""
    return {"funding": "0.0", "openInterest": "0.0", "prevDayPx": a.last_px, "dayNtlVlm": "0.0", "premium": None,
            "oraclePx": a.last_px, "markPx": a.last_px, "midPx": None, "impactPxs": None, "dayBaseVlm": "0.0"}


class HyperliquidInfo:
    """The info handler over one venue context (model, recorder, clock)."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.market = ctx.market
        self.history = HyperliquidHistory(ctx)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/info", self.info)]

    def asset_ctx(self, asset: Asset, now: int) -> tuple[dict, list[dict]]:
        """One asset context of metaAndAssetCtxs and its ground-truth records (open interest, funding)."""
        coin, sz = asset.name, asset.sz_decimals
        mark = price(self.market.mark_price(coin, now, "hyperliquid"), sz)
        oracle = price(self.market.index_price(coin, now), sz)
        mid = self.market.last_price(coin, now, "hyperliquid")
        next_ms = self.market.next_funding_ms("hyperliquid", coin, now)
        rate = self.current_rate(coin, now)
        oi = number(self.market.open_interest(coin, now, "hyperliquid"), sz)
        base_vol = self.market.volume_24h(coin, now, "hyperliquid")
        row = {
            "funding": stripped(rate, 10),
            "openInterest": oi,
            "prevDayPx": price(self.market.index_price(coin, now - DAY), sz),
            "dayNtlVlm": number(base_vol * float(mark), 4),
            "premium": stripped(float(mark) / float(oracle) - 1.0, 10),
            "oraclePx": oracle,
            "markPx": mark,
            "midPx": price(mid, sz),
            "impactPxs": [price(mid * 0.99995, sz), price(mid * 1.00005, sz)],
            "dayBaseVlm": number(base_vol, sz),
        }
        base = {"venue": VENUE, "endpoint": "metaAndAssetCtxs", "coin": coin, "raw_symbol": coin, "ts_ms": None}
        records = [
            {**base, "kind": "open_interest", "served_ns": time.time_ns(), "open_interest": float(oi),
             "open_interest_value": float(oi) * float(mark), "mark_price": float(mark)},
            {**base, "kind": "funding_rate", "served_ns": time.time_ns(), "rate": float(row["funding"]),
             "next_funding_ms": next_ms, "interval_minutes": 60, "mark_price": float(mark),
             "index_price": float(oracle), "premium": float(row["premium"])},
        ]
        return row, records

    def current_rate(self, coin: str, now: int) -> float:
        """`funding` of the asset ctx: the rate of the hour so far, which moves from the last
        settlement's rate towards the next one's as the hour goes by. predictedFundings' "HlPerp"
        gives the next settlement's rate, so the two differ within an hour, as on the venue."""
        next_ms = self.market.next_funding_ms("hyperliquid", coin, now)
        last, coming = (self.market.funding_rate("hyperliquid", coin, t) for t in (next_ms - HOUR, next_ms))
        return round(last + (coming - last) * (1 - (next_ms - now) / HOUR), 10)

    def meta_and_asset_ctxs(self, now: int) -> list:
        """[meta, contexts]: the delisted coins' contexts have no book."""
        listed = assets(self.market)
        built = [self.asset_ctx(a, now) if not a.delisted else (no_book(a), []) for a in listed]
        self.ctx.recorder.write(self.instrument_records("metaAndAssetCtxs") + [rec for _, recs in built for rec in recs])
        return [meta(self.market), [row for row, _ in built]]

    def venue_prediction(self, venue: str, hl_coin: str, now: int) -> dict | None:
        """What Hyperliquid reports for another venue: that venue's current rate of the same coin
        (kPEPE: Binance's 1000PEPEUSDT), None where the venue does not list it."""
        coin = hl_coin if venue == "hyperliquid" else universe_of(self.market).same_coin(venue, hl_coin)
        if coin is None:
            return None
        next_ms = self.market.next_funding_ms(venue, coin, now)
        return {"rate": self.market.funding_rate(venue, coin, next_ms), "next_funding_ms": next_ms,
                "interval_hours": self.market.funding_interval_hours(venue, coin, now)}

    def predicted_fundings(self, now: int) -> list:
        """Per coin, the next funding of Binance, Hyperliquid and Bybit as Hyperliquid reports them."""
        out, records = [], []
        fmt = {"binance": lambda r: f"{r:.8f}", "hyperliquid": lambda r: stripped(r, 10),
               "bybit": lambda r: stripped(r, 6)}
        for asset in assets(self.market):
            if asset.delisted:
                continue
            coin = asset.name
            entries, predicted = [], {}
            for label, venue in (("BinPerp", "binance"), ("HlPerp", "hyperliquid"), ("BybitPerp", "bybit")):
                p = self.venue_prediction(venue, coin, now)
                predicted[venue.upper()] = None if p is None else {
                    "rate": p["rate"], "next_funding_ms": p["next_funding_ms"],
                    "interval_minutes": p["interval_hours"] * 60}
                entries.append([label, None if p is None else {
                    "fundingRate": fmt[venue](p["rate"]), "nextFundingTime": p["next_funding_ms"],
                    "fundingIntervalHours": p["interval_hours"]}])
            out.append([coin, entries])
            hl = predicted["HYPERLIQUID"]
            records.append({"venue": VENUE, "kind": "funding_rate", "endpoint": "predictedFundings", "coin": coin,
                            "raw_symbol": coin, "ts_ms": None, "served_ns": time.time_ns(), "rate": hl["rate"],
                            "predicted_rate": hl["rate"], "next_funding_ms": hl["next_funding_ms"],
                            "interval_minutes": 60, "predicted": predicted})
        self.ctx.recorder.write(records)
        return out

    def instrument_records(self, endpoint: str) -> list[dict]:
        """The ground-truth records of the listed perpetuals (not the delisted ones)."""
        return [{"venue": VENUE, "kind": "instrument", "endpoint": endpoint, "coin": a.name, "raw_symbol": a.name,
                 "ts_ms": None, "served_ns": time.time_ns(), "contract_type": "perpetual", "active": True,
                 "interval_minutes": 60, "sz_decimals": a.sz_decimals, "max_leverage": a.max_leverage}
                for a in assets(self.market) if not a.delisted]

    async def info(self, request: web.Request) -> web.Response:
        """POST /info {"type": ...}: meta, metaAndAssetCtxs, spotMeta(AndAssetCtxs), predictedFundings,
        perpDexs, fundingHistory; anything else is the venue's 422."""
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return web.Response(status=400, text="Failed to parse the request body as JSON")
        if not isinstance(body, dict) or "type" not in body:
            return deserialize_error("missing field `type` at line 1 column 2")
        kind = body["type"]
        request[LOG_DETAIL] = kind
        now = self.ctx.now_ms()
        if body.get("dex") and kind in ("meta", "metaAndAssetCtxs"):
            return deserialize_error(f"unknown dex `{body['dex']}`")  # only the main dex is emulated
        if kind == "meta":
            self.ctx.recorder.write(self.instrument_records("meta"))
            return json_response(meta(self.market))
        if kind == "metaAndAssetCtxs":
            return json_response(self.meta_and_asset_ctxs(now))
        if kind == "spotMeta":
            return json_response({"universe": [], "tokens": [USDC_TOKEN]})
        if kind == "spotMetaAndAssetCtxs":
            return json_response([{"universe": [], "tokens": [USDC_TOKEN]}, []])
        if kind == "predictedFundings":
            return json_response(self.predicted_fundings(now))
        if kind == "perpDexs":
            return json_response([None])  # index 0 is the main dex; no builder-deployed dexs
        if kind == "fundingHistory":
            return self.history.funding_history(body)
        logger.warning("hyperliquid unknown info type: {!r}", kind)
        expected = ", ".join(f"`{t}`" for t in KNOWN_TYPES)
        return deserialize_error(f"unknown variant `{kind}`, expected one of {expected} at line 1 column 1")
