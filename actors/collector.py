"""Collector: one per venue. Polls current open interest and funding with one ccxt client,
streams liquidations with ccxt.pro (`liquidations: true`), normalizes them (actors/venues) and
sends them to the validator, keeping each event in its outbox until the writer acknowledges it.

Gaps are recorded, never silent: a lost liquidation connection (by the stream), the time this
collector was not running (from the last acknowledged liquidation of its previous run, kept in
`<run_dir>/state/`, to its new subscription), and events dropped because the outbox was full.

    python -m actors.collector --topology topology.yaml --venue binance [--sandbox-url URL]

A venue that cannot be reached is retried with exponential backoff and jitter; a symbol the
venue does not list is logged and skipped; nothing here stops the other venues or storage.
"""

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import ccxt
import click
import zmq
import zmq.asyncio
from loguru import logger

from actors.backfill import backfill
from actors.liquidation_stream import LiquidationStream, LiquidationsUnsupported
from actors.outbox import Outbox, OutboxFull
from actors.runtime import Stats, run_actor, socket, wait_or_stop
from actors.topology import Topology, VenueConfig
from actors.venues import UnknownSymbol, VenueAdapter, adapter
from actors.venues.base import Market, backoff_delay, describe, now_ns
from messages.codec import decode_message
from messages.envelope import Ack, ResendFrom
from messages.events import AnyEvent, Gap, Liquidation

DRAIN_TIMEOUT_S = 4.5  # at shutdown: wait this long for the last acks (coordinator allows ~5 s)
WATERMARK_EVERY_S = 0.5


class Collector:
    def __init__(self, topo: Topology, venue: VenueConfig, sandbox_url: str | None, stop: asyncio.Event, stats: Stats):
        self.topo, self.cfg, self.stop, self.stats = topo, venue, stop, stats
        self.name = f"collector.{venue.venue}"
        self.adapter: VenueAdapter = adapter(venue.venue)
        self.log = logger.bind(venue=self.adapter.venue)
        self.sandbox_url = sandbox_url
        self.record_dir = str(Path(topo.run_dir) / "recordings") if venue.record else None  # REST answers, liquidation frames
        self.client = self.adapter.client(sandbox_url, record_dir=self.record_dir)
        self.outbox = Outbox(self.name, memory_max=venue.outbox_max_events, spool_max_bytes=venue.outbox_spool_mb << 20,
                             spool_path=Path(topo.run_dir) / "spool" / f"{self.name}.spool", sender_driven=True)
        self.overflow: dict[tuple[str, str], list] = {}  # (stream, instrument) -> [first_ns, last_ns, count, event]
        self.liq_stream: LiquidationStream | None = None
        self.liq_pending: deque[tuple[int, int]] = deque()  # (seq, ts_event) of unacknowledged liquidations
        self.state_path = Path(topo.run_dir) / "state" / f"{self.name}.json"
        self.watermark_warned = -60.0
        self.wake_sender = asyncio.Event()
        self.ctx = zmq.asyncio.Context()
        self.sock = socket(self.ctx, zmq.DEALER, identity=self.name)
        self.sock.connect(topo.endpoint("ingest"))
        self.markets: list[Market] = []
        self.unknown: list[str] = []  # configured symbols the venue does not list (looked up again rarely)

    async def run(self) -> None:
        self.log.info("start: symbols {} (epoch {})", ", ".join(self.cfg.symbols), self.outbox.epoch)
        receiver = asyncio.create_task(self._receive_acks())
        sender = asyncio.create_task(self._send_in_order())
        resender = asyncio.create_task(self._resend_overdue())
        work = asyncio.create_task(self._collect())
        try:
            await self.stop.wait()
            work.cancel()  # in-flight fetches are abandoned: nothing of theirs was sent yet
            await asyncio.gather(work, return_exceptions=True)
            await self._drain()
        finally:
            receiver.cancel()
            resender.cancel()
            sender.cancel()
            await self.client.close()
            self.outbox.close()
            self.sock.close()
            self.ctx.term()

    async def _collect(self) -> None:
        if not await self._load_markets():
            return
        if not self.markets:  # every symbol unknown: only look again now and then
            await self._retry_unknown_symbols(until_any=True)
            if not self.markets:
                return
        await asyncio.gather(
            self._retry_unknown_symbols(),
            self._poll("instruments", self.cfg.instruments_interval_s, self._instruments),
            self._poll("open_interest", self.cfg.open_interest_interval_s, lambda: self.adapter.fetch_open_interest(self.client, self.markets)),
            self._poll("funding", self.cfg.funding_interval_s, lambda: self.adapter.fetch_funding(self.client, self.markets)),
            self._liquidations(),
            self._backfill(),
        )

    # -- history backfill (FR-007) --------------------------------------------------------------

    async def _backfill(self) -> None:
        """Keep the last `backfill_lookback` of OI / settled funding history filled (actors/backfill.py)."""
        await backfill(self.adapter, self.client, self.markets, self.topo.catalog, self.cfg, self._send_history,
                       self.stop, self.log)

    async def _send_history(self, event: AnyEvent) -> None:
        """A history row goes out like a polled one, but waits while the outbox is half full (live data first)."""
        while len(self.outbox) >= self.cfg.outbox_max_events // 2:
            await asyncio.sleep(0.05)
        self._send(event, "open_interest" if hasattr(event, "open_interest") else "funding")
        self._count([event])

    # -- liquidations ---------------------------------------------------------------------------

    async def _liquidations(self) -> None:
        """Stream liquidations until stop; every outage, and our own downtime, becomes a Gap."""
        if not self.cfg.liquidations:
            return
        missing_since = self._read_watermark()
        client_pro = self.adapter.client(self.sandbox_url, pro=True, record_dir=self.record_dir)
        try:
            self.liq_stream = LiquidationStream(
                self.adapter, client_pro, self.markets, self._send_liquidation,
                self._record_gap, self.stop, client_factory=lambda: self.adapter.client(self.sandbox_url, pro=True, record_dir=self.record_dir),
                silence_timeout_s=self.cfg.liquidation_silence_timeout_s,
                missing_since=missing_since and (missing_since, "collector was not running"),
                all_markets=list(self.adapter.perpetuals(self.client.markets).values()) if self.cfg.liquidation_all_symbols else None,
            )
        except LiquidationsUnsupported as exc:
            self.log.error("liquidations: {} (open interest and funding keep running)", exc)
            await client_pro.close()
            return
        watermark = asyncio.create_task(self._keep_watermark())
        try:
            await self.liq_stream.run()
        finally:
            watermark.cancel()
            await client_pro.close()

    async def _send_liquidation(self, event: Liquidation) -> None:
        if self._send(event, "liquidations"):
            self.liq_pending.append((self.outbox.seq, event.ts_event))
        self._count([event])

    async def _record_gap(self, start_ns: int, end_ns: int, reason: str, stream: str = "liquidations") -> None:
        """One Gap event per instrument of the stream (they are stored and published like data)."""
        now = now_ns()
        for m in self.liq_stream.markets if self.liq_stream else self.markets:  # all-symbols mode: every market
            gap = Gap(venue=self.adapter.venue, symbol=m["symbol"], instrument_id=self.adapter.instrument_id(m),
                      ts_event=start_ns, ts_recv=now, stream=stream, end_ns=max(end_ns, start_ns), reason=reason[:500])
            self._send(gap, stream)

    def _read_watermark(self) -> int | None:
        """Until when the previous run of this collector had every liquidation acknowledged."""
        try:
            return int(json.loads(self.state_path.read_text())["liquidations_complete_until_ns"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            self.log.warning("liquidations: unreadable state {} ({}); no restart gap recorded", self.state_path, exc)
            return None

    async def _keep_watermark(self) -> None:
        """Persist "every liquidation before T is durable" so that a restart knows where data may be missing."""
        self.state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            self._write_watermark()
            await asyncio.sleep(WATERMARK_EVERY_S)

    def _write_watermark(self) -> None:
        if self.liq_stream is None:
            return
        while self.liq_pending and self.liq_pending[0][0] <= self.outbox.acked:
            self.liq_pending.popleft()
        until = self.liq_stream.complete_until_ns()
        if self.liq_pending:
            until = min(until, self.liq_pending[0][1] - 2_000_000_000)
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"liquidations_complete_until_ns": until}))
            os.replace(tmp, self.state_path)  # atomic: a crash leaves the old or the new watermark
        except OSError as exc:  # disk full: an older watermark only makes a restart gap longer
            if time.monotonic() - self.watermark_warned >= 60:
                self.watermark_warned = time.monotonic()
                self.log.warning("liquidations: cannot save the watermark {}: {} (a restart gap would start earlier)",
                                 self.state_path, exc)

    # -- sending ----------------------------------------------------------------------------------

    def _send(self, event: AnyEvent, stream: str) -> bool:
        """Send one event through the outbox; when the outbox is full, count it towards a gap."""
        try:
            data = self.outbox.add(event)
        except OutboxFull as exc:
            over = self.overflow.setdefault((stream, event.instrument_id), [event.ts_event, event.ts_event, 0, event])
            over[0], over[1], over[2] = min(over[0], event.ts_event), max(over[1], event.ts_event), over[2] + 1
            if over[2] == 1:
                self.log.error("outbox full ({}): dropping {} {} and recording a gap", exc, stream, event.instrument_id)
            return False
        self.wake_sender.set()  # in memory: the sender sends it in order; spooled: later, by refill
        return True

    async def _send_in_order(self) -> None:
        """Hand new events to the socket in seq order. When the validator does not keep up
        (ZeroMQ's high-water mark) this waits, and events wait in the bounded, spooled outbox:
        in order, so no holes and no re-send round trips, and never unbounded in memory."""
        while True:
            await self.wake_sender.wait()
            self.wake_sender.clear()
            while batch := self.outbox.unsent(1000):
                for seq, data in batch:
                    await self.sock.send(data)
                    self.outbox.mark_sent(seq)

    def _flush_overflow(self) -> None:
        """Space again: record what was dropped as Gap events (they bypass the bound, a few at most)."""
        dropped, self.overflow = self.overflow, {}
        for (stream, _), (first, last, count, sample) in dropped.items():
            gap = Gap(venue=sample.venue, symbol=sample.symbol, instrument_id=sample.instrument_id, ts_event=first,
                      ts_recv=now_ns(), stream=stream, end_ns=last, reason=f"outbox full: {count} events dropped")
            self.outbox.add(gap, force=True)
            self.wake_sender.set()
            self.log.warning("{} {}: {} events dropped while the outbox was full, gap recorded", stream, sample.instrument_id, count)

    async def _load_markets(self) -> bool:
        """Load the venue's markets (retrying while it is unreachable) and resolve our symbols."""
        failures = 0
        while not self.stop.is_set():
            try:
                markets = await self.client.load_markets()
                break
            except Exception as exc:  # network, maintenance, garbage: retry them all
                failures += 1
                delay = backoff_delay(failures)
                self.log.warning("load_markets failed (venue unreachable?): {}; retry {} in {:.1f}s", describe(exc), failures, delay)
                await wait_or_stop(self.stop, delay)
        else:
            return False
        for text in self.cfg.symbols:
            try:
                self.markets.append(self.adapter.resolve(markets, text))
            except UnknownSymbol as exc:
                self.unknown.append(text)
                self.log.error("{}: skipped, looked up again every {:.0f}s", exc, self.cfg.unknown_symbol_retry_s)
        self.log.info("markets loaded: collecting {}", ", ".join(self.adapter.instrument_id(m) for m in self.markets) or "nothing")
        return True

    async def _retry_unknown_symbols(self, until_any: bool = False) -> None:
        """A symbol the venue did not list (not yet listed, delisted, a typo) is looked up again
        rarely; once listed, OI and funding polls include it (a running liquidation stream does
        not: it picks the symbol up at the collector's next start)."""
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
                self._send(self.adapter.instrument_event(market, now_ns()), "instruments")  # its definition at once
                self.log.warning("{} is listed now: collecting {}", text, self.adapter.instrument_id(market))
            if until_any and self.markets:
                return  # _collect starts the polls and the stream now
            if self.unknown:
                self.log.info("still not listed: {}", ", ".join(self.unknown))

    async def _instruments(self) -> list[AnyEvent]:
        ts = now_ns()
        return [self.adapter.instrument_event(m, ts) for m in self.markets]

    async def _poll(self, what: str, interval_s: float, fetch: Callable[[], Awaitable[list[AnyEvent]]]) -> None:
        """Fetch every `interval_s` on a fixed schedule; on failure back off, then resume it."""
        failures = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                events = await fetch()
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
            for event in events:
                self._send(event, what)
            self._count(events)
            self.log.debug("fetch {} ok: {} events", what, len(events))
            next_at += interval_s
            now = time.monotonic()
            if next_at < now:  # fell behind (slow venue): skip the missed ticks rather than burst
                next_at = now
            await wait_or_stop(self.stop, next_at - now)

    def _queued(self) -> int:
        """Events not yet acknowledged: in the outbox, or received and waiting to enter it."""
        return len(self.outbox) + (self.liq_stream.queued if self.liq_stream else 0)

    def _count(self, events: list[AnyEvent]) -> None:
        self.stats.events_in += len(events)
        self.stats.events_out = self.outbox.seq
        self.stats.queue_depth = self._queued()
        if events:
            self.stats.last_event_ns = events[-1].ts_recv

    async def _receive_acks(self) -> None:
        while True:
            msg = decode_message(await self.sock.recv())
            match msg:
                case Ack(epoch=epoch, seq=seq):
                    self.outbox.ack(epoch, seq)
                    self.stats.queue_depth = self._queued()
                    self.outbox.refill()  # spooled events move into memory as room frees ...
                    if self.outbox.unsent(1):
                        self.wake_sender.set()  # ... and the sender sends them, in order
                    if self.overflow:  # acks flow again: record what was dropped
                        self._flush_overflow()
                case ResendFrom(epoch=epoch, seq=seq):
                    self.outbox.resend_from(epoch, seq)  # rewinds the sender's cursor
                    self.wake_sender.set()

    async def _resend_overdue(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            before = self.outbox.sent_to
            self.outbox.due()  # no ack for a while: rewinds the sender's cursor to the last ack
            if self.outbox.sent_to < before:
                self.log.debug("no ack for {:.0f}s: re-sending from seq {}", self.outbox.resend_after_s, self.outbox.sent_to + 1)
                self.wake_sender.set()

    async def _drain(self) -> None:
        """Stopping: wait (bounded) until the writer has acknowledged everything we sent."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while len(self.outbox) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if len(self.outbox):
            self.log.error("stopping with {} unacknowledged events (writer not answering)", len(self.outbox))
        else:
            self.log.info("all {} events acknowledged", self.outbox.seq)
        if self.liq_stream is not None:
            self._write_watermark()


@click.command()
@click.option("--topology", "topology_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--venue", required=True, type=click.Choice(["binance", "bybit", "hyperliquid"]))
@click.option("--catalog", default=None, help="Override the topology's catalog path.")
@click.option("--sandbox-url", default=None, help="Base URL of the emulated venue (sandbox mode).")
def main(topology_path: str, venue: str, catalog: str | None, sandbox_url: str | None) -> None:
    async def actor(topo: Topology, stop: asyncio.Event, stats: Stats) -> None:
        await Collector(topo, topo.venue(venue), sandbox_url, stop, stats).run()

    run_actor(f"collector.{venue}", topology_path, catalog, actor)


if __name__ == "__main__":
    main()
