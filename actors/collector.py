"""Collector: one per venue. Polls current open interest and funding with one ccxt client,
normalizes them (actors/venues) and sends them to the validator, keeping each event in its
outbox until the writer acknowledges it.

    python -m actors.collector --topology topology.yaml --venue binance [--sandbox-url URL]

A venue that cannot be reached is retried with exponential backoff and jitter; a symbol the
venue does not list is logged and skipped; nothing here stops the other venues or storage.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import ccxt
import click
import zmq
import zmq.asyncio
from loguru import logger

from actors.outbox import Outbox
from actors.runtime import Stats, run_actor, socket, wait_or_stop
from actors.topology import Topology, VenueConfig
from actors.venues import UnknownSymbol, VenueAdapter, adapter
from actors.venues.base import Market, now_ns
from messages.codec import decode_message
from messages.envelope import Ack, ResendFrom
from messages.events import AnyEvent

BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
DRAIN_TIMEOUT_S = 2.5  # at shutdown: wait this long for the last acks (coordinator allows ~3 s)


def backoff_delay(failures: int, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_MAX_S) -> float:
    """Exponential backoff with full jitter: 1, 2, 4 ... s (capped), times a random 0.5-1.0."""
    return min(cap, initial * 2 ** max(0, failures - 1)) * random.uniform(0.5, 1.0)


def describe(exc: BaseException) -> str:
    """A short reason for a log line: the ccxt class says more than the message alone."""
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Collector:
    def __init__(self, topo: Topology, venue: VenueConfig, sandbox_url: str | None, stop: asyncio.Event, stats: Stats):
        self.topo, self.cfg, self.stop, self.stats = topo, venue, stop, stats
        self.name = f"collector.{venue.venue}"
        self.adapter: VenueAdapter = adapter(venue.venue)
        self.log = logger.bind(venue=self.adapter.venue)
        self.client = self.adapter.client(sandbox_url)
        self.outbox = Outbox(self.name)
        self.ctx = zmq.asyncio.Context()
        self.sock = socket(self.ctx, zmq.DEALER, identity=self.name)
        self.sock.connect(topo.endpoint("ingest"))
        self.markets: list[Market] = []

    async def run(self) -> None:
        self.log.info("start: symbols {} (epoch {})", ", ".join(self.cfg.symbols), self.outbox.epoch)
        receiver = asyncio.create_task(self._receive_acks())
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
            await self.client.close()
            self.sock.close()
            self.ctx.term()

    async def _collect(self) -> None:
        if not await self._load_markets():
            return
        await asyncio.gather(
            self._poll("instruments", self.cfg.instruments_interval_s, self._instruments),
            self._poll("open_interest", self.cfg.open_interest_interval_s, lambda: self.adapter.fetch_open_interest(self.client, self.markets)),
            self._poll("funding", self.cfg.funding_interval_s, lambda: self.adapter.fetch_funding(self.client, self.markets)),
        )

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
                self.log.error("{}: skipped", exc)
        self.log.info("markets loaded: collecting {}", ", ".join(self.adapter.instrument_id(m) for m in self.markets) or "nothing")
        return bool(self.markets)

    async def _instruments(self) -> list[AnyEvent]:
        ts = now_ns()
        return [self.adapter.instrument(m, ts) for m in self.markets]

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
                await self.sock.send(self.outbox.add(event))
            self._count(events)
            self.log.debug("fetch {} ok: {} events", what, len(events))
            next_at += interval_s
            now = time.monotonic()
            if next_at < now:  # fell behind (slow venue): skip the missed ticks rather than burst
                next_at = now
            await wait_or_stop(self.stop, next_at - now)

    def _count(self, events: list[AnyEvent]) -> None:
        self.stats.events_in += len(events)
        self.stats.events_out = self.outbox.seq
        self.stats.queue_depth = len(self.outbox)
        if events:
            self.stats.last_event_ns = events[-1].ts_recv

    async def _receive_acks(self) -> None:
        while True:
            msg = decode_message(await self.sock.recv())
            match msg:
                case Ack(epoch=epoch, seq=seq):
                    self.outbox.ack(epoch, seq)
                    self.stats.queue_depth = len(self.outbox)
                case ResendFrom(epoch=epoch, seq=seq):
                    for data in self.outbox.resend_from(epoch, seq):
                        await self.sock.send(data)

    async def _resend_overdue(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            overdue = self.outbox.due()
            if overdue:
                self.log.debug("re-sending {} unacknowledged events", len(overdue))
            for data in overdue:
                await self.sock.send(data)

    async def _drain(self) -> None:
        """Stopping: wait (bounded) until the writer has acknowledged everything we sent."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while len(self.outbox) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if len(self.outbox):
            self.log.error("stopping with {} unacknowledged events (writer not answering)", len(self.outbox))
        else:
            self.log.info("all {} events acknowledged", self.outbox.seq)


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
