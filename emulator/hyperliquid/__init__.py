"""Hyperliquid info API emulator: POST /info {"type": ...} for the perpetual metadata and
asset contexts ccxt's hyperliquid reads, plus predictedFundings (no ccxt method; called as
publicPostInfo). Shapes follow emulator/samples/hyperliquid.json.

Hyperliquid payloads carry no timestamp: ccxt leaves timestamps None and computes the next
funding time itself (next full hour), so ground-truth records have ts_ms = null.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec
from aiohttp import web
from loguru import logger

from emulator import history
from emulator.common import VenueContext, hl_number, hl_price, json_response, logging_middleware, stripped
from emulator.market import DAY, HOUR, LISTINGS

VENUE = "HYPERLIQUID"


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    sz_decimals: int
    max_leverage: int


# Universe order is the asset index ccxt uses as the market id (BTC = 0, ETH = 1, like the real one).
_ASSETS: tuple[Asset, ...] = (
    Asset("BTC", 5, 40),
    Asset("ETH", 4, 25),
    Asset("SOL", 2, 20),
    Asset("XRP", 0, 20),
    Asset("DOGE", 0, 10),
    Asset("HYPE", 2, 10),
)
assert tuple(a.name for a in _ASSETS) == LISTINGS["hyperliquid"]

# Delisted coins stay in the universe (so the asset indices of the others never move), flagged
# with the real API's optional fields `isDelisted`, `onlyIsolated`, `marginMode` (Hyperliquid docs,
# info endpoint, perpetuals); their context has no book: zero OI and funding, premium / midPx /
# impactPxs null. ccxt lists them inactive, so nobody collects them.
_DELISTED: tuple[dict, ...] = (
    {"szDecimals": 1, "name": "MATIC", "maxLeverage": 20, "marginTableId": 20, "isDelisted": True},
    {"szDecimals": 0, "name": "HPOS", "maxLeverage": 3, "marginTableId": 3, "onlyIsolated": True,
     "isDelisted": True, "marginMode": "strictIsolated"},
)
_DELISTED_PX = {"MATIC": "0.37621", "HPOS": "0.011"}

_USDC_TOKEN = {
    "name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0,
    "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True, "evmContract": None, "fullName": None,
}
_KNOWN_TYPES = ("meta", "metaAndAssetCtxs", "spotMeta", "spotMetaAndAssetCtxs", "predictedFundings", "perpDexs",
               "fundingHistory")


def _deserialize_error(detail: str) -> web.Response:
    """The real API answers a body it cannot map to a request with 422 and a plain-text
    serde message (ccxt maps HTTP 422 to ExchangeError)."""
    return web.Response(status=422, text=f"Failed to deserialize the JSON body into the target type: {detail}")


def _meta() -> dict:
    return {
        "universe": [
            {"szDecimals": a.sz_decimals, "name": a.name, "maxLeverage": a.max_leverage,
             "marginTableId": a.max_leverage}
            for a in _ASSETS
        ] + [dict(d) for d in _DELISTED],
        "marginTables": [
            [lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}]
            for lev in sorted({a.max_leverage for a in _ASSETS} | {d["marginTableId"] for d in _DELISTED})
        ],
        "collateralToken": 0,
    }


def create_app(ctx: VenueContext) -> web.Application:
    """The Hyperliquid application (mount at the server root)."""
    market = ctx.market

    def asset_ctx(asset: Asset, now: int) -> tuple[dict, list[dict]]:
        coin, sz = asset.name, asset.sz_decimals
        mark = hl_price(market.mark_price(coin, now, "hyperliquid"), sz)
        oracle = hl_price(market.index_price(coin, now), sz)
        mid = market.last_price(coin, now, "hyperliquid")
        next_ms = market.next_funding_ms("hyperliquid", coin, now)
        rate = current_rate(coin, now)
        oi = hl_number(market.open_interest(coin, now, "hyperliquid"), sz)
        base_vol = market.volume_24h(coin, now, "hyperliquid")
        row = {
            "funding": stripped(rate, 10),
            "openInterest": oi,
            "prevDayPx": hl_price(market.index_price(coin, now - DAY), sz),
            "dayNtlVlm": hl_number(base_vol * float(mark), 4),
            "premium": stripped(float(mark) / float(oracle) - 1.0, 10),
            "oraclePx": oracle,
            "markPx": mark,
            "midPx": hl_price(mid, sz),
            "impactPxs": [hl_price(mid * 0.99995, sz), hl_price(mid * 1.00005, sz)],
            "dayBaseVlm": hl_number(base_vol, sz),
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

    def current_rate(coin: str, now: int) -> float:
        """`funding` of the asset ctx: the rate of the hour so far, which moves from the last
        settlement's rate towards the next one's as the hour goes by. predictedFundings' "HlPerp"
        gives the next settlement's rate, so the two differ within an hour, as on the venue."""
        next_ms = market.next_funding_ms("hyperliquid", coin, now)
        last, coming = (market.funding_rate("hyperliquid", coin, t) for t in (next_ms - HOUR, next_ms))
        return round(last + (coming - last) * (1 - (next_ms - now) / HOUR), 10)

    def meta_and_asset_ctxs(now: int) -> list:
        built = [asset_ctx(a, now) for a in _ASSETS]
        ctx.recorder.write(instrument_records("metaAndAssetCtxs") + [rec for _, recs in built for rec in recs])
        delisted = [{"funding": "0.0", "openInterest": "0.0", "prevDayPx": _DELISTED_PX[d["name"]], "dayNtlVlm": "0.0",
                     "premium": None, "oraclePx": _DELISTED_PX[d["name"]], "markPx": _DELISTED_PX[d["name"]],
                     "midPx": None, "impactPxs": None, "dayBaseVlm": "0.0"} for d in _DELISTED]
        return [_meta(), [row for row, _ in built] + delisted]

    def venue_prediction(venue: str, coin: str, now: int) -> dict | None:
        """What Hyperliquid reports for another venue: that venue's current rate."""
        if coin not in LISTINGS[venue]:
            return None
        next_ms = market.next_funding_ms(venue, coin, now)
        return {"rate": market.funding_rate(venue, coin, next_ms), "next_funding_ms": next_ms,
                "interval_hours": market.funding_interval_hours(venue, coin, now)}

    def predicted_fundings(now: int) -> list:
        out, records = [], []
        fmt = {"binance": lambda r: f"{r:.8f}", "hyperliquid": lambda r: stripped(r, 10),
               "bybit": lambda r: stripped(r, 6)}
        for asset in _ASSETS:
            coin = asset.name
            entries, predicted = [], {}
            for label, venue in (("BinPerp", "binance"), ("HlPerp", "hyperliquid"), ("BybitPerp", "bybit")):
                p = venue_prediction(venue, coin, now)
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
        ctx.recorder.write(records)
        return out

    def instrument_records(endpoint: str) -> list[dict]:
        return [{"venue": VENUE, "kind": "instrument", "endpoint": endpoint, "coin": a.name, "raw_symbol": a.name,
                 "ts_ms": None, "served_ns": time.time_ns(), "contract_type": "perpetual", "active": True,
                 "interval_minutes": 60, "sz_decimals": a.sz_decimals, "max_leverage": a.max_leverage}
                for a in _ASSETS]

    async def info(request: web.Request) -> web.Response:
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return web.Response(status=400, text="Failed to parse the request body as JSON")
        if not isinstance(body, dict) or "type" not in body:
            return _deserialize_error("missing field `type` at line 1 column 2")
        kind = body["type"]
        request["log_detail"] = kind
        now = ctx.now_ms()
        if body.get("dex") and kind in ("meta", "metaAndAssetCtxs"):
            return _deserialize_error(f"unknown dex `{body['dex']}`")  # only the main dex is emulated
        if kind == "meta":
            ctx.recorder.write(instrument_records("meta"))
            return json_response(_meta())
        if kind == "metaAndAssetCtxs":
            return json_response(meta_and_asset_ctxs(now))
        if kind == "spotMeta":
            return json_response({"universe": [], "tokens": [_USDC_TOKEN]})
        if kind == "spotMetaAndAssetCtxs":
            return json_response([{"universe": [], "tokens": [_USDC_TOKEN]}, []])
        if kind == "predictedFundings":
            return json_response(predicted_fundings(now))
        if kind == "perpDexs":
            return json_response([None])  # index 0 is the main dex; no builder-deployed dexs
        if kind == "fundingHistory":
            return history.hyperliquid_funding_history(ctx, body, LISTINGS["hyperliquid"])
        logger.warning("hyperliquid unknown info type: {!r}", kind)
        expected = ", ".join(f"`{t}`" for t in _KNOWN_TYPES)
        return _deserialize_error(f"unknown variant `{kind}`, expected one of {expected} at line 1 column 1")

    app = web.Application(middlewares=[logging_middleware("hyperliquid")])
    app.add_routes([web.post("/info", info)])
    history.install_stats(app)  # GET /_emulator/stats
    return app


from emulator.hyperliquid.faults import FAULTS  # noqa: E402 - split follows
from emulator.hyperliquid.limits import LIMITS  # noqa: E402
from emulator.venue import EmulatedVenue  # noqa: E402

EMULATED = EmulatedVenue("hyperliquid", create_app, FAULTS, LIMITS)
