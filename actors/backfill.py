"""Daemon backfill: the collector keeps the last `backfill_lookback` of history filled (FR-007).

    await backfill(adapter, client, markets, catalog_root, venue_cfg, send, stop, log)

On start, and then every `backfill_interval_s` (a top-up, or at once when `wake` is set, e.g.
after a gap), for each market: open-interest history at `backfill_oi_period` and settled funding
history over [now - lookback, now]. Only what is missing is fetched (design §3 item 6: REST kinds
heal from the catalog), planned by `storage.coverage.missing_ranges` from the catalog's files plus
what this process already sent: the writer writes Parquet only every `flush_interval_s`, so rows
sent but not flushed yet are remembered here and never asked for again. Ranges the venue was
asked for and had nothing in (its own holes) are remembered too, for the life of the process.
After a restart the catalog alone decides; the writer merges rows by (instrument_id, ts_init),
so a row fetched twice is stored once.

Every row goes to `send(event)`: the collector's outbox, so the rows travel collector ->
validator -> writer under the normal acknowledgement contract, exactly like polled values.

Venue limits (the adapter's `oi_history_retention_days` and `oi_history_periods`, docs/history.md):
a venue that keeps OI history for a while only (Binance: 30 days) gets an older lookback from that
floor on, logged once; one without OI history (Hyperliquid) backfills settled funding only (logged
once; its OI is recorded by polling only).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from storage.coverage import missing_ranges, neighbours
from actors.topology import VenueConfig
from venues.base import MS, HistoryUnavailable, Market, VenueAdapter
from venues.history import (
    PERIODS_MS,
    default_funding_interval_ns,
    fetch_funding_history,
    fetch_open_interest_history,
    oi_history_start,
)
from messages.events import AnyEvent
from messages.timeunits import NS
from messages.timeunits import iso as _iso

# A range that ended at least this long before it was asked for is complete on the venue's side:
# if it came back empty, the venue has nothing there. Closer to now, a row may still be due.
SETTLED_AFTER_NS = 15 * 60 * NS
RETRY_INITIAL_S = 5.0

Send = Callable[[AnyEvent], Awaitable[Any]]
Range = tuple[int, int]


def subtract(ranges: list[Range], covered: list[Range]) -> list[Range]:
    """Closed ns ranges minus closed ns ranges (both sorted or not); the pieces left, sorted."""
    out: list[Range] = []
    for a, b in sorted(ranges):
        pieces = [(a, b)]
        for c, d in covered:
            nxt = []
            for x, y in pieces:
                if d < x or c > y:
                    nxt.append((x, y))
                    continue
                if x < c:
                    nxt.append((x, c - 1))
                if d < y:
                    nxt.append((d + 1, y))
            pieces = nxt
        out += pieces
    return sorted(out)


def merge(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class Backfill:
    """What one collector process has asked for and sent, per (kind, instrument)."""

    def __init__(self, adapter: VenueAdapter, client: Any, markets: list[Market], catalog_root: str,
                 cfg: VenueConfig, send: Send, log: Any) -> None:
        self.adapter, self.client, self.markets, self.catalog = adapter, client, markets, catalog_root
        self.cfg, self.send, self.log = cfg, send, log
        self.lookback_ns = int(cfg.backfill_lookback_s * NS)
        self.period = cfg.backfill_oi_period
        self.kinds = ("oi", "funding") if adapter.oi_history_periods else ("funding",)
        self.sent: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)  # ts ns -> interval ns
        self.asked: dict[tuple[str, str], list[Range]] = defaultdict(list)
        self.noted: set[str] = set()

    def note_once(self, key: str, level: str, message: str, *args: Any) -> None:
        if key not in self.noted:
            self.noted.add(key)
            self.log.log(level, message, *args)

    async def round(self, now_ns: int | None = None) -> tuple[int, bool]:
        """One pass over every market and kind; returns (rows sent, whether something failed)."""
        now = now_ns if now_ns is not None else time.time_ns()
        start = now - self.lookback_ns
        sent_rows, failed = 0, False
        for market in self.markets:
            iid = self.adapter.instrument_id(market)
            for kind in self.kinds:
                try:
                    sent_rows += await self._fill(kind, market, iid, start, now)
                except asyncio.CancelledError:
                    raise
                except HistoryUnavailable as exc:
                    self.note_once(f"unavailable {kind} {iid}", "WARNING", "backfill {} {}: {}", kind, iid, exc)
                except Exception as exc:  # network, rate limit, maintenance: the next round retries
                    failed = True
                    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                    self.log.warning("backfill {} {} failed: {}{}", kind, iid, type(exc).__name__,
                                     f": {text}" if text else "")
        return sent_rows, failed

    async def _fill(self, kind: str, market: Market, iid: str, start: int, now: int) -> int:
        key = (kind, iid)
        mine, asked = self.sent[key], self.asked[key]
        if kind == "oi":
            step = PERIODS_MS[self.period] * MS
            start, note = oi_history_start(self.adapter, self.period, start, now)
            if note:
                self.note_once(f"floor {iid}", "WARNING", "backfill oi {}: {}", iid, note)
        else:
            step = default_funding_interval_ns(self.adapter, market)
        # forget what fell out of the window
        for ts in [t for t in mine if t < start]:
            del mine[ts]
        asked[:] = [(a, b) for a, b in merge(asked) if b >= start]
        todo = subtract(missing_ranges(self.catalog, kind, iid, start, now, step, also_have=mine.items()), asked)
        if not todo:
            return 0
        rows = 0
        started = time.monotonic()
        for a, b in todo:
            if kind == "oi":
                events = await fetch_open_interest_history(self.adapter, self.client, market, a, b, self.period)
            else:
                known = neighbours(self.catalog, iid, a, b, also_have=mine.items())
                events = await fetch_funding_history(self.adapter, self.client, market, a, b, known_ns=known)
            for event in events:
                await self.send(event)
                mine[event.ts_event] = step if kind == "oi" else event.interval_minutes * 60 * NS
            rows += len(events)
            # asked and answered: up to the newest row, or all of it if the range is long past
            last = max((e.ts_event for e in events), default=a - 1)
            asked.append((a, max(last, min(b, now - SETTLED_AFTER_NS))))
        self.log.info("backfill {} {}: {} rows from {} range(s) {} in {:.1f}s", kind, iid, rows, len(todo),
                      ", ".join(f"{_iso(a)}..{_iso(b)}" for a, b in todo[:3]) + (" ..." if len(todo) > 3 else ""),
                      time.monotonic() - started)
        return rows


async def backfill(
    adapter: VenueAdapter,
    client: Any,
    markets: list[Market],
    catalog_root: str,
    cfg: VenueConfig,
    send: Send,
    stop: asyncio.Event,
    log: Any,
    *,
    wake: asyncio.Event | None = None,
) -> None:
    """Backfill the configured lookback, then top it up every `cfg.backfill_interval_s` until
    `stop` (or at once when `wake` is set). Returns at once if `backfill_lookback` is 0."""
    if not cfg.backfill_lookback_s or not markets:
        return
    job = Backfill(adapter, client, markets, catalog_root, cfg, send, log)
    if "oi" not in job.kinds:
        log.warning("backfill: {} publishes no open-interest history: backfilling settled funding only "
                    "(its open interest is recorded by polling, from now on)", adapter.venue)
    log.info("backfill: keeping the last {} of {} filled ({}), top-up every {:g}s", _span(job.lookback_ns),
             ", ".join(adapter.instrument_id(m) for m in markets),
             " and ".join(f"oi {job.period}" if k == "oi" else "settled funding" for k in job.kinds),
             cfg.backfill_interval_s)
    retry = RETRY_INITIAL_S
    first = True
    while not stop.is_set():
        started = time.monotonic()
        rows, failed = await job.round()
        if first or rows:
            log.info("backfill {}: {} rows sent in {:.1f}s{}", "done" if first else "top-up", rows,
                     time.monotonic() - started, " (some failed: retrying)" if failed else "")
        first = False
        delay = min(retry, cfg.backfill_interval_s) if failed else cfg.backfill_interval_s
        retry = min(retry * 2, cfg.backfill_interval_s) if failed else RETRY_INITIAL_S
        waiters = [asyncio.ensure_future(stop.wait())] + ([asyncio.ensure_future(wake.wait())] if wake else [])
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if wake is not None:
            wake.clear()




def _span(ns: int) -> str:
    s = ns / NS
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s / size:g}{unit}"
    return f"{s:g}s"
