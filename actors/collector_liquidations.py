"""The collector's liquidation wiring: its venue's `LiquidationStream`s beside the polls.

Owns what a collector does with liquidations: starting the streams with the topology's settings
(a venue without a feed is logged and the polls go on), sending each liquidation through the
collector's outbox, turning each outage into one Gap per instrument of that stream, and the
restart watermark: `<run_dir>/state/<collector>.json` says until when every liquidation was
acknowledged by the writer, so that the next run records the time it was not running as a gap.

One stream per connection the venue's limits require (`feed.connection_groups`: Bybit splits
its `allLiquidation` topics), each with its own ccxt.pro client, reconnects and gaps. With
`symbols: all` Binance watches its all-symbols channel. Markets listed or delisted while running
(`update`) join a stream with room (else a new one) or leave theirs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from messages.events import Liquidation
from venues.liquidation_stream import LiquidationStream, LiquidationsUnsupported, StreamConfig, StreamScope


class Collector(Protocol):
    """What this module uses of its collector (`actors/collector.py`)."""

    topo: Any
    cfg: Any
    name: str
    adapter: Any
    client: Any
    sandbox_url: str | None
    record_dir: str | None
    markets: list
    stop: asyncio.Event
    log: Any
    outbox: Any

    def send(self, event: Any, stream: str) -> bool: ...
    def count(self, events: list) -> None: ...
    def record_gap(self, start_ns: int, end_ns: int, reason: str, stream: str, markets: list) -> None: ...


WATERMARK_EVERY_S = 0.5
UNACKED_MARGIN_NS = 2_000_000_000  # an unacknowledged liquidation: data may be missing from this long before it


class CollectorLiquidations:
    """Liquidations of one collector (`collector.cfg.liquidations`); see module doc."""

    def __init__(self, collector: Collector) -> None:
        self.c = collector
        self.streams: list[LiquidationStream] = []
        self.tasks: list[asyncio.Task] = []
        self.pending: deque[tuple[int, int]] = deque()  # (seq, ts_event) of unacknowledged liquidations
        self.state_path = Path(collector.topo.run_dir) / "state" / f"{collector.name}.json"
        self.watermark_warned = -60.0
        self.missing_since: int | None = None

    @property
    def queued(self) -> int:
        """Received from the venue, not yet in the outbox."""
        return sum(s.queued for s in self.streams)

    async def run(self) -> None:
        """Stream liquidations until stop; every outage, and our own downtime, becomes a Gap."""
        c = self.c
        if not c.cfg.liquidations:
            return
        self.missing_since = self._read_watermark()
        feed = c.adapter.liquidations
        try:
            feed.require()
        except LiquidationsUnsupported as exc:
            c.log.error("liquidations: {} (open interest and funding keep running)", exc)
            return
        every = c.cfg.all_symbols and feed.all_symbols_stream is not None
        if c.cfg.liquidation_all_symbols and not every:
            all_markets = list(c.adapter.perpetuals(c.client.markets).values())
            if not self._start(c.markets, all_markets):
                return
        else:
            for group in self._groups(list(c.markets), every):
                if not self._start(group, group if every else None):
                    return
        self.missing_since = None  # streams started later (new listings) were not missing anything
        watermark = asyncio.create_task(self._keep_watermark())
        try:
            while not all(t.done() for t in self.tasks):  # streams added while running join the wait
                await asyncio.gather(*self.tasks)
        finally:
            watermark.cancel()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _groups(self, markets: list, every: bool) -> list[list]:
        """The markets split over connections as the venue's limits require (all-symbols channel: one)."""
        if every:
            return [markets] if markets else []
        by_raw = {self.c.adapter.raw_symbol(m): m for m in markets}
        return [[by_raw[r] for r in group] for group in self.c.adapter.liquidations.connection_groups(list(by_raw))]

    def _start(self, markets: list, all_markets: list | None) -> bool:
        """A stream of its own (own ccxt.pro client, so its own connection) for these markets."""
        c = self.c
        new_client = lambda: c.adapter.client(c.sandbox_url, pro=True, record_dir=c.record_dir)  # noqa: E731
        client_pro = new_client()
        scope = StreamScope(markets=list(markets), all_markets=all_markets,
                            missing_since=(self.missing_since, "collector was not running") if self.missing_since else None)

        async def on_gap(start_ns: int, end_ns: int, reason: str) -> None:
            """One Gap event per instrument of this stream (they are stored and published like data)."""
            c.record_gap(start_ns, end_ns, reason, "liquidations", stream.markets)

        try:
            stream = LiquidationStream(c.adapter, client_pro, scope, self._send, on_gap, c.stop,
                                       StreamConfig(silence_timeout_s=c.cfg.liquidation_silence_timeout_s),
                                       client_factory=new_client)
        except LiquidationsUnsupported as exc:
            c.log.error("liquidations: {} (open interest and funding keep running)", exc)
            asyncio.get_running_loop().create_task(client_pro.close())
            return False
        self.streams.append(stream)
        self.tasks.append(asyncio.create_task(self._run(stream, client_pro)))
        return True

    @staticmethod
    async def _run(stream: LiquidationStream, client_pro: Any) -> None:
        try:
            await stream.run()
        finally:
            await client_pro.close()

    def update(self, listed: list, delisted: list) -> None:
        """Markets listed or delisted while running (actors/listing.py): a listed one joins the
        first stream with room (the venue's per-connection limits), else a new stream."""
        if not self.streams:
            return  # not streaming (or not yet: the streams start with the collector's markets)
        for stream in self.streams:
            stream.remove_markets(delisted)
        feed, ad = self.c.adapter.liquidations, self.c.adapter
        every = self.streams[0].all_symbols
        rest = list(listed)
        for stream in self.streams:
            if not rest:
                break
            if every:
                stream.add_markets(rest)
                return
            fits = []
            for m in rest:
                raws = [ad.raw_symbol(x) for x in [*stream.markets, *fits, m]]
                if len(feed.connection_groups(raws)) == 1:
                    fits.append(m)
            stream.add_markets(fits)
            rest = [m for m in rest if m not in fits]
        for group in self._groups(rest, False):
            self._start(group, None)

    async def _send(self, event: Liquidation) -> None:
        if self.c.send(event, "liquidations"):
            self.pending.append((self.c.outbox.seq, event.ts_event))
        self.c.count([event])

    def _read_watermark(self) -> int | None:
        """Until when the previous run of this collector had every liquidation acknowledged."""
        try:
            return int(json.loads(self.state_path.read_text())["liquidations_complete_until_ns"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            self.c.log.warning("liquidations: unreadable state {} ({}); no restart gap recorded", self.state_path, exc)
            return None

    async def _keep_watermark(self) -> None:
        """Persist "every liquidation before T is durable" so that a restart knows where data may be missing."""
        self.state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            self._write_watermark()
            await asyncio.sleep(WATERMARK_EVERY_S)

    def _write_watermark(self) -> None:
        if not self.streams:
            return
        while self.pending and self.pending[0][0] <= self.c.outbox.acked:
            self.pending.popleft()
        until = min(s.complete_until_ns() for s in self.streams)
        if self.pending:
            until = min(until, self.pending[0][1] - UNACKED_MARGIN_NS)
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"liquidations_complete_until_ns": until}))
            os.replace(tmp, self.state_path)  # atomic: a crash leaves the old or the new watermark
        except OSError as exc:  # disk full: an older watermark only makes a restart gap longer
            if time.monotonic() - self.watermark_warned >= 60:
                self.watermark_warned = time.monotonic()
                self.c.log.warning("liquidations: cannot save the watermark {}: {} (a restart gap would start earlier)",
                                   self.state_path, exc)
