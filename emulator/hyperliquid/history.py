"""Owns Hyperliquid's funding history, with the real venue's contract:
`POST /info {"type":"fundingHistory","coin","startTime","endTime"?}`: oldest first, at most 500
rows from startTime; `time` carries a few ms of settlement latency like the real one; every row
has `premium`, as in the recorded answer (tests/fixtures/real/hyperliquid/funding_history.json). There is no open-interest history on Hyperliquid.

Holes are `emulator/history.py`'s.
"""

from __future__ import annotations

import time

from aiohttp import web

from emulator.common import VenueContext, fixed, json_response, stripped
from emulator.history import funding_hole
from emulator.hyperliquid.answers import deserialize_error
from emulator.hyperliquid.assets import VENUE
from emulator.market import HOUR, Market, _key
from emulator.universe import universe_of

PAGE = 500


def latency_ms(market: Market, coin: str, settlement_ms: int) -> int:
    """The few milliseconds by which Hyperliquid's `time` trails the hour (0..79 ms)."""
    return int((market._uniform(_key("hl-latency", coin), settlement_ms // HOUR) + 1.0) * 40)  # noqa: SLF001


class HyperliquidHistory:
    """The fundingHistory info request over one venue context."""

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.market = ctx.market

    def funding_history(self, body: dict) -> web.Response:
        """POST /info {"type": "fundingHistory", ...}: at most 500 rows from startTime, oldest first."""
        market = self.market
        now = self.ctx.now_ms()
        if "coin" not in body:
            return deserialize_error("missing field `coin` at line 1 column 2")
        if "startTime" not in body:
            return deserialize_error("missing field `startTime` at line 1 column 2")
        try:
            start = int(body["startTime"])
            end = min(now, int(body["endTime"])) if body.get("endTime") is not None else now
        except (TypeError, ValueError):
            return deserialize_error("invalid type: expected u64 at line 1 column 2")
        coin = body["coin"]
        if universe_of(market).get("hyperliquid", coin) is None:
            return json_response([])
        rows, records = [], []
        s = market.next_funding_ms("hyperliquid", coin, start - 1 - 80)  # a row's time may trail the hour
        while s <= end and len(rows) < PAGE:
            t = s + latency_ms(market, coin, s)
            if start <= t <= end and not funding_hole(market, "hyperliquid", coin, s, now):
                rate_str = stripped(market.funding_rate("hyperliquid", coin, s), 10)
                premium = market.mark_price(coin, s, "hyperliquid") / market.index_price(coin, s) - 1.0
                row = {"coin": coin, "fundingRate": rate_str, "premium": fixed(premium, 8), "time": t}
                rows.append(row)
                records.append({"venue": VENUE, "kind": "funding_history", "endpoint": "fundingHistory", "coin": coin,
                                "raw_symbol": coin, "ts_ms": t, "served_ns": time.time_ns(), "rate": float(rate_str),
                                "interval_minutes": 60})
            s = market.next_funding_ms("hyperliquid", coin, s)
        self.ctx.recorder.write(records)
        return json_response(rows)
