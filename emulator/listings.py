"""Owns listing new perpetuals at run time and showing what a venue lists (every venue app):

- `POST /_emulator/list?symbol=SYM[&interval_hours=H]`: the venue lists a new perpetual from now
  on: in its instrument lists (exchangeInfo, instruments-info, meta), in every bulk and per-symbol
  endpoint and in its liquidation streams, with its values in the ground truth like every other
  symbol. SYM is the venue's own name (Binance/Bybit `NEWCOINUSDT` or `1000NEWCOINUSDT`,
  Hyperliquid `NEWCOIN` or `kNEWCOIN`); H its funding interval (default: Binance and Bybit 4,
  Hyperliquid 1). One ground-truth line `{"kind": "listing", "raw_symbol", "coin", "ts_ms",
  "interval_minutes"}` records it. A symbol the venue lists already, or a malformed one, is
  refused with 400 and the reason. The opposite is `POST /_emulator/delist` (`emulator/faults.py`).
- `GET /_emulator/universe`: the venue's perpetuals with their status (`trading`, `settling`,
  `pending`, `delisted`; a symbol delisted with `/_emulator/delist` is `delisted`), listing date
  and funding interval, and the count per status: what a client's market list must match.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from aiohttp import web
from loguru import logger

from emulator.common import VenueContext, json_response
from emulator.universe import universe_of

DELISTED = web.AppKey("delisted_symbols", set)  # the fault injector's delisted set (emulator/faults.py)


@dataclass(frozen=True)
class ListingRules:
    """How one venue names a perpetual, and the funding intervals it may have."""

    pattern: str  # a regular expression with groups (base, quote)
    example: str  # shown in the error for a malformed symbol
    quote: str  # the quote of the venue's perpetuals when the pattern has none
    intervals: tuple[int, ...]
    default_interval: int

    def parse(self, symbol: str) -> tuple[str, str] | None:
        m = re.fullmatch(self.pattern, symbol)
        if m is None:
            return None
        return m.group(1), (m.group(2) if m.re.groups > 1 else self.quote)


class Listings:
    """The listing controls of one venue app."""

    def __init__(self, ctx: VenueContext, rules: ListingRules) -> None:
        self.ctx, self.rules = ctx, rules

    def install(self, app: web.Application) -> None:
        app.add_routes([web.post("/_emulator/list", self.list_symbol), web.get("/_emulator/universe", self.show)])

    async def list_symbol(self, request: web.Request) -> web.Response:
        """POST /_emulator/list?symbol=SYM[&interval_hours=H]."""
        ctx, rules = self.ctx, self.rules
        symbol = request.query.get("symbol", "")
        parsed = rules.parse(symbol)
        if parsed is None:
            raise web.HTTPBadRequest(text=f"symbol {symbol!r} is not a {ctx.venue} perpetual's name; "
                                          f"expected one like {rules.example}")
        raw_interval = request.query.get("interval_hours", str(rules.default_interval))
        if not raw_interval.isdigit() or int(raw_interval) not in rules.intervals:
            raise web.HTTPBadRequest(text=f"interval_hours {raw_interval!r}: {ctx.venue} funds every "
                                          f"{', '.join(map(str, rules.intervals))} hours")
        now = ctx.now_ms()
        try:
            listing = universe_of(ctx.market).add(ctx.venue, symbol, parsed[0], parsed[1], now, int(raw_interval))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        ctx.recorder.write([{"venue": ctx.venue.upper(), "kind": "listing", "endpoint": request.path,
                             "coin": listing.base, "raw_symbol": symbol, "ts_ms": now, "served_ns": time.time_ns(),
                             "interval_minutes": listing.interval_h * 60}])
        logger.info("{} listed {} (funding every {} h)", ctx.venue, symbol, listing.interval_h)
        return json_response({"venue": ctx.venue, "symbol": symbol, "base": listing.base, "quote": listing.quote,
                              "listed_ms": now, "interval_hours": listing.interval_h})

    async def show(self, request: web.Request) -> web.Response:
        """GET /_emulator/universe: every perpetual of the venue with its status, and the counts."""
        universe = universe_of(self.ctx.market)
        delisted = request.app.get(DELISTED, set())
        rows = [{"symbol": x.symbol, "base": x.base, "quote": x.quote,
                 "status": "delisted" if x.symbol in delisted else x.status, "listed_ms": x.listed_ms,
                 "interval_hours": self.ctx.market.funding_interval_hours(self.ctx.venue, x.base, self.ctx.now_ms())
                 if x.core else x.interval_h, "added": x.added}
                for x in universe.of(self.ctx.venue)]
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return json_response({"venue": self.ctx.venue, "size": universe.size, "counts": counts, "perpetuals": rows})
