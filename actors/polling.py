"""The collector's REST side: the venue's markets and the configured symbols (resolved with the
adapter; one the venue does not list is logged, skipped and looked up again rarely; `symbols:
all` follows the venue's listings, actors/listing.py), and the polls of instrument definitions,
open interest and funding, each on its fixed schedule.

A poll that fails (venue down, maintenance, rate limit) is logged with the venue and retried with
exponential backoff and jitter, then resumes its schedule; a slow venue makes it skip ticks rather
than burst. Everything venue-specific is the adapter's (`venues/`); events go to `send(event,
stream)` (the collector's outbox) and `count(events)` (its stats).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt

from actors.listing import Listing, OnChange
from actors.reachability import Reachability
from actors.runtime import wait_or_stop
from actors.topology import VenueConfig
from messages.events import AnyEvent
from venues.base import Market, UnknownSymbol, VenueAdapter, backoff_delay, describe, now_ns

Send = Callable[[AnyEvent, str], Any]


class Polls:
    """The markets one collector polls, and its polls (see module doc). `markets` is the list the
    rest of the collector reads too: symbols listed later are appended to it."""

    def __init__(self, adapter: VenueAdapter, client: Any, cfg: VenueConfig, stop: asyncio.Event, log: Any,
                 send: Send, count: Callable[[list[AnyEvent]], None], reach: Reachability) -> None:
        self.adapter, self.client, self.cfg, self.stop, self.log = adapter, client, cfg, stop, log
        self.send, self.count = send, count
        self.reach = reach  # reported: `unreachable` while the venue does not answer
        self.markets: list[Market] = []
        self.unknown: list[str] = []  # configured symbols the venue does not list (looked up again rarely)
        self.listing = Listing(adapter, cfg.exclude, log) if cfg.all_symbols else None
        self.on_change: OnChange = lambda listed, delisted, since_ns: None  # the collector's: liquidations, gaps
        self._reload = False  # the first instruments tick uses the markets just loaded

    async def run(self) -> None:
        """Poll until stop (the markets are loaded: `load_markets`)."""
        ad, client = self.adapter, self.client
        await asyncio.gather(
            self.retry_unknown_symbols(),
            self.poll("instruments", self.cfg.instruments_interval_s, self.instruments),
            self.poll("open_interest", self.cfg.open_interest_interval_s, self.open_interest),
            # a copy: a listing that changes while the request is out is not "missing from the answer"
            self.poll("funding", self.cfg.funding_interval_s, lambda: ad.fetch_funding(client, list(self.markets))),
        )

    async def load_markets(self) -> bool:
        """Load the venue's markets (retrying while it is unreachable) and resolve our symbols;
        False if stopped first."""
        failures = 0
        while not self.stop.is_set():
            try:
                markets = await self.reach.call(self.client.load_markets())
                break
            except Exception as exc:  # network, maintenance, garbage: retry them all
                failures += 1
                delay = backoff_delay(failures)
                self.log.warning("load_markets failed (venue unreachable?): {}; retry {} in {:.1f}s", describe(exc), failures, delay)
                await wait_or_stop(self.stop, delay)
        else:
            return False
        if self.listing is not None:
            self.markets.extend(self.listing.select(markets))
            self.log.info("markets loaded: collecting all {} perpetuals{}", len(self.markets),
                          f" (excluding {', '.join(self.cfg.exclude)})" if self.cfg.exclude else "")
            return True
        for text in self.cfg.symbols:
            try:
                self.markets.append(self.adapter.resolve(markets, text))
            except UnknownSymbol as exc:
                self.unknown.append(text)
                self.log.error("{}: skipped, looked up again every {:.0f}s", exc, self.cfg.unknown_symbol_retry_s)
        self.log.info("markets loaded: collecting {}", ", ".join(self.adapter.instrument_id(m) for m in self.markets) or "nothing")
        return True

    async def retry_unknown_symbols(self, until_any: bool = False) -> None:
        """A symbol the venue did not list (not yet listed, delisted, a typo) is looked up again
        rarely; once listed, OI and funding polls include it, and the collector is told
        (`on_change`: its liquidation stream subscribes it)."""
        while self.unknown and not await wait_or_stop(self.stop, self.cfg.unknown_symbol_retry_s):
            try:
                markets = await self.client.load_markets(reload=True)
            except Exception as exc:  # the venue is down: the polls say so; try again next time
                self.log.warning("looking up {} again failed: {}", ", ".join(self.unknown), describe(exc))
                continue
            for text in list(self.unknown):
                try:
                    market = self.adapter.resolve(markets, text)
                except UnknownSymbol:
                    continue
                self.unknown.remove(text)
                self.markets.append(market)
                self.send(self.adapter.instrument_event(market, now_ns()), "instruments")  # its definition at once
                self.on_change([market], [], now_ns())
                self.log.warning("{} is listed now: collecting {}", text, self.adapter.instrument_id(market))
            if until_any and self.markets:
                return  # the collector starts the polls and the stream now
            if self.unknown:
                self.log.info("still not listed: {}", ", ".join(self.unknown))

    async def instruments(self) -> list[AnyEvent]:
        """The definitions; with `symbols: all` the venue's markets are reloaded first and new
        listings and delistings followed (actors/listing.py)."""
        ts = now_ns()
        if self.listing is None:
            return [self.adapter.instrument_event(m, ts) for m in self.markets]
        markets = await self.client.load_markets(reload=True) if self._reload else self.client.markets
        self._reload = True
        return self.listing.refresh(self.markets, markets, self.on_change)

    async def open_interest(self) -> list[AnyEvent]:
        """One OI poll; its events are sent as they come (a venue may spread its calls over the interval)."""
        def emit(events: list[AnyEvent]) -> None:
            events = self.still_collected(events)
            for event in events:
                self.send(event, "open_interest")
            self.count(events)

        await self.adapter.poll_open_interest(self.client, self.markets, self.cfg.open_interest_interval_s, emit)
        return []

    def still_collected(self, events: list[AnyEvent]) -> list[AnyEvent]:
        """`symbols: all`: the answer of a request that was out while its symbol was delisted is
        dropped (it would land after the delisting's recorded end; Hyperliquid answers a
        delisted coin with zeros)."""
        if self.listing is None:
            return events
        collected = {m["symbol"] for m in self.markets}
        return [e for e in events if e.symbol in collected]

    async def poll(self, what: str, interval_s: float, fetch: Callable[[], Awaitable[list[AnyEvent]]]) -> None:
        """Fetch every `interval_s` on a fixed schedule; on failure back off, then resume it."""
        failures = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                events = await self.reach.call(fetch())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = backoff_delay(failures)
                level = "WARNING" if isinstance(exc, ccxt.NetworkError) else "ERROR"
                self.log.log(level, "fetch {} failed: {}; retry {} in {:.1f}s", what, describe(exc), failures, delay)
                await wait_or_stop(self.stop, delay)
                continue
            if failures:
                self.log.info("fetch {} recovered after {} failures", what, failures)
            failures = 0
            events = self.still_collected(events) if what != "instruments" else events
            for event in events:
                self.send(event, what)
            self.count(events)
            self.log.debug("fetch {} ok: {} events", what, len(events))
            next_at += interval_s
            now = time.monotonic()
            if next_at < now:  # fell behind (slow venue): skip the missed ticks rather than burst
                next_at = now
            await wait_or_stop(self.stop, next_at - now)
