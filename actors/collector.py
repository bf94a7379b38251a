"""Collector: one per venue. Polls current open interest and funding with one ccxt client
(`actors/polling.py`), streams liquidations with ccxt.pro (`liquidations: true`), normalized by
the venue's adapter (venues/), and sends them to the validator, keeping each event in its outbox
until the writer acknowledges it. This module owns the process: the outbox and its sender, acks
and re-sends, heartbeats, gaps, the liquidation watermark and the drain at stop.

Gaps are recorded, never silent: a lost liquidation connection (by the stream), the time this
collector was not running (from the last acknowledged liquidation of its previous run, kept in
`<run_dir>/state/`, to its new subscription), and events dropped because the outbox was full.
The liquidation side (stream, its gaps, the restart watermark) is actors/collector_liquidations.py.

    python -m actors.collector --topology topology.yaml --venue binance [--sandbox-url URL]

A venue that cannot be reached is retried with exponential backoff and jitter; a symbol the
venue does not list is logged and skipped; nothing here stops the other venues or storage.
"""

import asyncio
import time
from pathlib import Path

import click
import msgspec
import zmq
import zmq.asyncio
from loguru import logger

from actors.backfill import backfill
from actors.collector_liquidations import CollectorLiquidations
from actors.inbox import Inbox
from actors.outbox import Outbox, OutboxFull
from actors.reachability import Reachability
from actors.runtime import Stats, essential, run_actor, socket
from actors.polling import Polls
from actors.topology import VENUE_NAMES, Topology, VenueConfig
from venues import adapter
from venues.base import Market, VenueAdapter, now_ns
from actors.spool import OutboxLog
from messages.codec import decode_message, encode
from messages.envelope import Ack, Heartbeat, ResendFrom
from messages.events import AnyEvent, Gap

DRAIN_TIMEOUT_S = 4.5  # at shutdown: wait this long for the last acks (coordinator allows ~5 s)
HEARTBEAT_EVERY_S = 1.0


class Collector:
    def __init__(self, topo: Topology, venue: VenueConfig, sandbox_url: str | None, stop: asyncio.Event, stats: Stats):
        self.topo, self.cfg, self.stop, self.stats = topo, venue, stop, stats
        self.name = f"collector.{venue.venue}"
        self.adapter: VenueAdapter = adapter(venue.venue)
        self.log = logger.bind(venue=self.adapter.venue)
        self.reach = Reachability(stats, self.log)  # reported: `unreachable` while the venue does not answer
        self.sandbox_url = sandbox_url
        self.record_dir = str(Path(topo.run_dir) / "recordings") if venue.record else None  # REST answers, liquidation frames
        self.client = self.adapter.client(sandbox_url, record_dir=self.record_dir)
        spool_dir = Path(topo.run_dir) / "spool"
        limits = {"memory_max": venue.outbox_max_events, "spool_max_bytes": venue.outbox_spool_mb << 20}
        # What an earlier run of this collector left unacknowledged is sent first, under its old
        # epoch and seqs (the writer stores each event once); new events get a new epoch.
        self.earlier = [Outbox.resume(self.name, found, **limits) for found in OutboxLog.recover(spool_dir, self.name)]
        for box in self.earlier:
            if box.finished:  # nothing to send; it still heartbeats (a writer that lost its WAL tail asks)
                box.close()
        self.outbox = Outbox(self.name, spool_dir=spool_dir, sender_driven=True, **limits)
        self.overflow: dict[tuple[str, str], list] = {}  # (stream, instrument) -> [first_ns, last_ns, count, event]
        self.wake_sender = asyncio.Event()
        self.ctx = zmq.asyncio.Context()
        self.sock = socket(self.ctx, zmq.DEALER, identity=self.name)
        self.sock.connect(topo.endpoint("ingest"))
        self.inbox = Inbox(self.sock, "ingest", frames=1)  # acks and resend requests from the validator
        self.polls = Polls(self.adapter, self.client, venue, stop, self.log, self.send, self.count, self.reach)
        self.markets: list[Market] = self.polls.markets  # the same list: symbols listed later join it
        self.liquidations = CollectorLiquidations(self)  # actors/collector_liquidations.py
        self.polls.on_change = self._listing_changed

    @property
    def outboxes(self) -> list[Outbox]:
        return [*self.earlier, self.outbox]

    async def run(self) -> None:
        symbols = "all" + (f" except {', '.join(self.cfg.exclude)}" if self.cfg.exclude else "") if self.cfg.all_symbols \
            else ", ".join(self.cfg.symbols)
        self.log.info("start: symbols {} (epoch {})", symbols, self.outbox.epoch)
        for box in self.earlier:
            if len(box):
                self.log.warning("re-sending {} events an earlier run left unacknowledged (epoch {}, {})",
                                 len(box), box.epoch, Path(self.topo.run_dir) / "spool")
        receiver = essential(self._receive_acks(), "receiving acks")
        sender = essential(self._send_in_order(), "sending")
        resender = essential(self._resend_overdue(), "re-sending")
        work = essential(self._collect(), "collecting")
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
            for box in self.outboxes:
                box.close()
            self.inbox.close()
            self.sock.close()
            self.ctx.term()

    async def _collect(self) -> None:
        if not await self.polls.load_markets():
            return
        if not self.markets:  # every symbol unknown: only look again now and then
            await self.polls.retry_unknown_symbols(until_any=True)
            if not self.markets:
                return
        await asyncio.gather(self.polls.run(), self.liquidations.run(), self._backfill())

    def _listing_changed(self, listed: list[Market], delisted: list[Market], since_ns: int) -> None:
        """Markets listed or delisted while running (actors/polling.py, actors/listing.py): the
        liquidation streams follow, and a delisted market's end is recorded as a Gap per stream
        from `since_ns` (the last time it was seen listed) to now: its series end there, and what
        the venue published in between may be missing."""
        self.liquidations.update(listed, delisted)
        if not delisted:
            return
        streams = ["open_interest", "funding"] + (["liquidations"] if self.cfg.liquidations and self.adapter.liquidations.supported else [])
        for stream in streams:
            self.record_gap(since_ns, now_ns(), "delisted: the venue no longer lists it as a trading perpetual; "
                            "collection ended", stream, delisted)

    # -- history backfill (FR-007) --------------------------------------------------------------

    async def _backfill(self) -> None:
        """Keep the last `backfill_lookback` of OI / settled funding history filled (actors/backfill.py)."""
        await backfill(self.adapter, self.client, self.markets, self.topo.catalog, self.cfg, self._send_history,
                       self.stop, self.log)

    async def _send_history(self, event: AnyEvent) -> None:
        """A history row goes out like a polled one, but waits while the outbox is half full (live data first)."""
        while len(self.outbox) >= self.cfg.outbox_max_events // 2:
            await asyncio.sleep(0.05)
        self.send(event, "open_interest" if hasattr(event, "open_interest") else "funding")
        self.count([event])

    # -- sending ----------------------------------------------------------------------------------

    def send(self, event: AnyEvent, stream: str) -> bool:
        """Send one event through the outbox; when the outbox is full, count it towards a gap."""
        try:
            self.outbox.add(event)
        except OutboxFull as exc:
            over = self.overflow.setdefault((stream, event.instrument_id), [event.ts_event, event.ts_event, 0, event])
            over[0], over[1], over[2] = min(over[0], event.ts_event), max(over[1], event.ts_event), over[2] + 1
            if over[2] == 1:
                self.log.error("outbox full ({}): dropping {} {} and recording a gap", exc, stream, event.instrument_id)
            return False
        self.wake_sender.set()  # in memory: the sender sends it in order; spooled: later, by refill
        return True

    def record_gap(self, start_ns: int, end_ns: int, reason: str, stream: str, markets: list[Market], *, force: bool = False) -> None:
        now = now_ns()
        for m in markets:  # all-symbols mode: every market
            gap = Gap(venue=self.adapter.venue, symbol=m["symbol"], instrument_id=self.adapter.instrument_id(m),
                      ts_event=start_ns, ts_recv=now, stream=stream, end_ns=max(end_ns, start_ns), reason=reason[:500])
            if not force:
                self.send(gap, stream)
                continue
            try:
                self.outbox.add(gap, force=True)
            except OutboxFull as exc:  # memory full, spool's disk full: nothing more can be kept
                self.log.error("cannot record the gap ({}): {}", reason, exc)
                return
            self.wake_sender.set()

    async def _send_in_order(self) -> None:
        """Hand events to the socket in seq order, an earlier run's backlog first. When the
        validator does not keep up (ZeroMQ's high-water mark) this waits, and events wait in the
        bounded, spooled outbox: in order, so no holes and no re-send round trips, and never
        unbounded in memory."""
        while True:
            await self.wake_sender.wait()
            self.wake_sender.clear()
            for box in self.outboxes:
                box.refill()  # spooled events move into memory as room frees
                while batch := box.next_batch():  # what waits now, in one message (never waits to fill one)
                    last, data = batch
                    await self.sock.send(data)
                    box.mark_sent(last)
                    box.refill()
                    await asyncio.sleep(0)  # a send that does not block does not yield: let acks and stats in

    def _flush_overflow(self) -> None:
        """Record what was dropped as Gap events as soon as it is dropped (they bypass the bound,
        one per stream and instrument per tick at most). Disk full too: kept for the next tick."""
        for key, (first, last, count, sample) in list(self.overflow.items()):
            gap = Gap(venue=sample.venue, symbol=sample.symbol, instrument_id=sample.instrument_id, ts_event=first,
                      ts_recv=now_ns(), stream=key[0], end_ns=last, reason=f"outbox full: {count} events dropped")
            try:
                self.outbox.add(gap, force=True)
            except OutboxFull:
                return
            del self.overflow[key]
            self.wake_sender.set()
            self.log.warning("{} {}: {} events dropped while the outbox was full, gap recorded", key[0], sample.instrument_id, count)

    def _queued(self) -> int:
        """Events not yet acknowledged: in the outboxes, or received and waiting to enter one."""
        return self._unacked() + self.liquidations.queued

    def count(self, events: list[AnyEvent]) -> None:
        self.stats.events_in += len(events)
        self.stats.events_out = self.outbox.seq
        self.stats.queue_depth = self._queued()
        if events:
            self.stats.last_event_ns = events[-1].ts_recv

    def _box(self, epoch: int) -> Outbox | None:
        return next((box for box in self.outboxes if box.epoch == epoch), None)

    async def _receive_acks(self) -> None:
        while True:
            [data] = await self.inbox.recv()
            try:
                msg = decode_message(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.inbox.refuse("undecodable", "undecodable message dropped: {}", exc)
                continue
            match msg:
                case Ack(epoch=epoch, seq=seq) if box := self._box(epoch):
                    box.ack(epoch, seq)
                    if box is not self.outbox and box.finished and box.log is not None:
                        self.log.info("the backlog of epoch {} is acknowledged", box.epoch)
                        box.close()  # its log goes; its heartbeats go on (a writer that lost its tail asks)
                    self.stats.queue_depth = self._queued()
                    self.wake_sender.set()  # room in memory: the sender refills and goes on
                case ResendFrom(epoch=epoch, seq=seq) if box := self._box(epoch):
                    for first, last in box.lost(seq):
                        await self._writer_lost(box, first, last)
                    box.resend_from(epoch, seq)  # rewinds the sender's cursor
                    self.wake_sender.set()
                case Ack() | ResendFrom():
                    pass  # for an epoch of an earlier life that nobody here holds any more
                case _:
                    self.inbox.refuse("type", "unexpected {} dropped", type(msg).__name__)

    async def _writer_lost(self, box: Outbox, first: int, last: int) -> None:
        """The writer asks again for events it had acknowledged (its WAL lost them, and we have
        forgotten them): record the time they were received as a gap on every stream, and tell
        the writer not to wait for them."""
        start, end = box.happened_between(first, last)
        reason = f"the writer lost acknowledged events {first}..{last} of epoch {box.epoch} (cut or lost WAL)"
        self.log.error("{}: recording a gap", reason)
        streams = ["open_interest", "funding", "instruments"] + (["liquidations"] if self.cfg.liquidations else [])
        for stream in streams:
            self.record_gap(start, end, reason, stream, self.markets, force=True)
        await self._heartbeat(box)

    async def _heartbeat(self, box: Outbox) -> None:
        """Tells the writer the last seq sent (it asks for a lost tail) and up to where lost
        events were recorded as a gap (it stops waiting for them)."""
        lost_from, forgotten = box.lost_block
        await self.sock.send(encode(Heartbeat(source=self.name, epoch=box.epoch, seq=box.sent_to, ts=now_ns(),
                                              lost_from=lost_from, forgotten=forgotten)))

    async def _resend_overdue(self) -> None:
        """Every 0.25 s: re-send what waited too long for an ack, record dropped events as gaps,
        make sure nothing waits unsent; every second a heartbeat per outbox."""
        beat_at = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            if self.overflow:
                self._flush_overflow()
            for box in self.outboxes:
                before = box.sent_to
                box.due()  # no ack for a while: rewinds the sender's cursor to the last ack
                if box.sent_to < before:
                    self.log.debug("no ack for {:.0f}s: re-sending from seq {}", box.resend_after_s, box.sent_to + 1)
                if box.sent_to < box.seq:
                    self.wake_sender.set()
            if time.monotonic() - beat_at >= HEARTBEAT_EVERY_S:
                beat_at = time.monotonic()
                for box in self.outboxes:
                    await self._heartbeat(box)

    async def _drain(self) -> None:
        """Stopping: wait (bounded) until the writer has acknowledged everything we sent."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self._unacked() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if held := self._unacked():
            self.log.warning("stopping with {} unacknowledged events (writer not answering): kept in {} for the next start",
                             held, Path(self.topo.run_dir) / "spool")
        else:
            self.log.info("all {} events acknowledged", self.outbox.seq)

    def _unacked(self) -> int:
        return sum(map(len, self.outboxes))


@click.command()
@click.option("--topology", "topology_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--venue", required=True, type=click.Choice(VENUE_NAMES))
@click.option("--catalog", default=None, help="Override the topology's catalog path.")
@click.option("--sandbox-url", default=None, help="Base URL of the emulated venue (sandbox mode).")
def main(topology_path: str, venue: str, catalog: str | None, sandbox_url: str | None) -> None:
    async def actor(topo: Topology, stop: asyncio.Event, stats: Stats) -> None:
        await Collector(topo, topo.venue(venue), sandbox_url, stop, stats).run()

    run_actor(f"collector.{venue}", topology_path, catalog, actor)


if __name__ == "__main__":
    main()
