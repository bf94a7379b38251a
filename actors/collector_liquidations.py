"""The collector's liquidation wiring: its venue's `LiquidationStream` beside the polls.

Owns what a collector does with liquidations: starting the stream with the topology's settings
(a venue without a feed is logged and the polls go on), sending each liquidation through the
collector's outbox, turning each outage into one Gap per watched instrument, and the restart
watermark: `<run_dir>/state/<collector>.json` says until when every liquidation was acknowledged
by the writer, so that the next run records the time it was not running as a gap.
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
        self.stream: LiquidationStream | None = None
        self.pending: deque[tuple[int, int]] = deque()  # (seq, ts_event) of unacknowledged liquidations
        self.state_path = Path(collector.topo.run_dir) / "state" / f"{collector.name}.json"
        self.watermark_warned = -60.0

    @property
    def queued(self) -> int:
        """Received from the venue, not yet in the outbox."""
        return self.stream.queued if self.stream else 0

    async def run(self) -> None:
        """Stream liquidations until stop; every outage, and our own downtime, becomes a Gap."""
        c = self.c
        if not c.cfg.liquidations:
            return
        missing_since = self._read_watermark()
        new_client = lambda: c.adapter.client(c.sandbox_url, pro=True, record_dir=c.record_dir)  # noqa: E731
        client_pro = new_client()
        scope = StreamScope(
            markets=c.markets,
            all_markets=list(c.adapter.perpetuals(c.client.markets).values()) if c.cfg.liquidation_all_symbols else None,
            missing_since=(missing_since, "collector was not running") if missing_since else None,
        )
        try:
            self.stream = LiquidationStream(c.adapter, client_pro, scope, self._send, self._record_gap, c.stop,
                                            StreamConfig(silence_timeout_s=c.cfg.liquidation_silence_timeout_s),
                                            client_factory=new_client)
        except LiquidationsUnsupported as exc:
            c.log.error("liquidations: {} (open interest and funding keep running)", exc)
            await client_pro.close()
            return
        watermark = asyncio.create_task(self._keep_watermark())
        try:
            await self.stream.run()
        finally:
            watermark.cancel()
            await client_pro.close()

    async def _send(self, event: Liquidation) -> None:
        if self.c.send(event, "liquidations"):
            self.pending.append((self.c.outbox.seq, event.ts_event))
        self.c.count([event])

    async def _record_gap(self, start_ns: int, end_ns: int, reason: str) -> None:
        """One Gap event per instrument of the stream (they are stored and published like data)."""
        self.c.record_gap(start_ns, end_ns, reason, "liquidations", self.stream.markets if self.stream else self.c.markets)

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
        if self.stream is None:
            return
        while self.pending and self.pending[0][0] <= self.c.outbox.acked:
            self.pending.popleft()
        until = self.stream.complete_until_ns()
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
