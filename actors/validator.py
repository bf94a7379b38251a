"""Validator: every event passes here between the collectors and the writer.

    python -m actors.validator --topology topology.yaml

It decodes each event with the strict typed decoder (schema and value constraints), checks what
a type cannot express (timestamps not in the future, the id's venue suffix), forwards good
events to the writer and to the live bus, and turns bad ones into `Rejected` records with the
reason, so the writer stores them as dead letters and no seq goes missing unexplained.
Acks and resend requests from the writer are relayed back to the collector they name.
"""

import asyncio
import time

import click
import msgspec
import zmq
import zmq.asyncio
from loguru import logger

from actors.inbox import Inbox
from actors.runtime import Stats, essential, run_actor, socket
from actors.taps_cache import LastValueBus
from actors.topology import VENUE_NAMES, Topology
from messages.codec import decode_event, decode_message, encode
from messages.envelope import Ack, Envelope, Heartbeat, Rejected, ResendFrom
from messages.events import AnyEvent, FundingRate, Gap, Instrument, Liquidation, Malformed, OpenInterest

MAX_FUTURE_NS = 5 * 60 * 1_000_000_000  # venue clocks drift; 5 minutes ahead is not drift
DRAIN_IDLE_S = 0.3
TOPIC_KIND = {OpenInterest: "oi", FundingRate: "funding", Instrument: "instrument", Liquidation: "liq", Gap: "gap"}


def check(event: AnyEvent, now_ns: int) -> str | None:
    """What is wrong with a well-typed event, or None."""
    if type(event) is Malformed:  # the collector could not normalize it: never data
        return f"malformed {event.venue} {event.symbol}: {event.reason}"
    if event.ts_event > now_ns + MAX_FUTURE_NS:
        return f"ts_event {event.ts_event} is more than 5 min in the future"
    if not event.instrument_id.endswith("." + event.venue):
        return f"instrument_id {event.instrument_id!r} does not belong to venue {event.venue}"
    if type(event) is Gap and event.end_ns < event.ts_event:
        return f"gap ends ({event.end_ns}) before it starts ({event.ts_event})"
    return None


def known_peer(identity: bytes) -> bool:
    """Only collectors (`collector.<venue>`) and `derivs history` handing rows to the running mesh
    (`cli.history.<pid>`, cli/handoff.py) send on the ingest socket; anything else is refused."""
    if identity.startswith(b"cli.history.") and identity[len(b"cli.history."):].isdigit():
        return True
    return identity.startswith(b"collector.") and identity[len(b"collector."):].decode(errors="replace") in VENUE_NAMES


def validate(envelope: Envelope, now_ns: int) -> tuple[AnyEvent | None, str | None]:
    """(event, None) if good, (None, reason) if not."""
    try:
        event = decode_event(envelope.payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return None, f"invalid event: {exc}"
    reason = check(event, now_ns)
    return (None, reason) if reason else (event, None)


def validate_event(event: AnyEvent, now_ns: int) -> tuple[AnyEvent | None, str | None]:
    """`validate` for an event not yet encoded (the CLI): the same constraints and checks."""
    return validate(Envelope(source="cli", epoch=0, seq=0, payload=msgspec.Raw(encode(event))), now_ns)


def topic(event: AnyEvent) -> bytes:
    """Live-bus topic, e.g. `oi.BINANCE.BTCUSDT-PERP.BINANCE`: SUB prefixes filter kind and venue."""
    return f"{TOPIC_KIND[type(event)]}.{event.venue}.{event.instrument_id}".encode()


class Validator:
    def __init__(self, topo: Topology, stop: asyncio.Event, stats: Stats):
        self.stop, self.stats = stop, stats
        self.ctx = zmq.asyncio.Context()
        self.ingest = socket(self.ctx, zmq.ROUTER)
        self.ingest.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted collector takes its old place
        self.ingest.bind(topo.endpoint("ingest"))
        self.from_collectors = Inbox(self.ingest, "ingest", frames=2)
        self.store = socket(self.ctx, zmq.DEALER, identity="validator")
        self.store.connect(topo.endpoint("store"))
        self.from_writer = Inbox(self.store, "store", frames=1)
        self.taps = LastValueBus(self.ctx, topo.endpoint("taps"))  # XPUB: a new tap gets the last value per topic
        self.passed = self.rejected = 0
        self.last_ingest = time.monotonic()

    async def run(self) -> None:
        logger.info("start: ingest and store bound")
        tasks = [essential(self._from_collectors(), "receiving from the collectors"),
                 essential(self._from_writer(), "receiving from the writer"), essential(self.taps.serve(), "the live bus")]
        await self.stop.wait()
        await self._drain()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        logger.info("stopping: {} events passed, {} rejected", self.passed, self.rejected)
        for sock in (self.from_collectors, self.from_writer, self.ingest, self.store, self.taps):
            sock.close()
        self.ctx.term()

    async def _from_collectors(self) -> None:
        while True:
            peer, data = await self.from_collectors.recv()
            self.last_ingest = time.monotonic()
            self.stats.events_in += 1
            if not known_peer(peer):
                self.from_collectors.refuse("peer", "message from unknown peer {!r} refused", peer[:64])
                continue
            try:
                msg = decode_message(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # No envelope, so no seq to account for: log it, never crash on it.
                self.from_collectors.refuse("undecodable", "undecodable message from {!r} dropped: {}", peer, exc)
                continue
            match msg:
                case Envelope() | Heartbeat() if msg.source.encode() != peer:  # acks would go to the named source
                    self.from_collectors.refuse("source", "{} from {!r} claiming source {!r} refused",
                                                type(msg).__name__, peer[:64], msg.source[:64])
                case Envelope():
                    await self._check_and_forward(msg, data)
                case Heartbeat():
                    await self.store.send(data)
                case _:
                    self.from_collectors.refuse("type", "unexpected {} from {!r} dropped", type(msg).__name__, peer)

    async def _check_and_forward(self, envelope: Envelope, data: bytes) -> None:
        fresh = self.taps.first_time(envelope.source, envelope.epoch, envelope.seq)  # a re-send is not news for taps
        event, reason = validate(envelope, time.time_ns())
        if event is None:
            self.rejected += 1
            self.stats.events_out += 1
            logger.bind(venue="-").warning("rejected {} seq {}: {}", envelope.source, envelope.seq, reason)
            rejected = Rejected(source=envelope.source, epoch=envelope.epoch, seq=envelope.seq, reason=reason, payload=bytes(envelope.payload))
            await self.store.send(encode(rejected))
            return
        self.passed += 1
        self.stats.events_out += 1
        self.stats.last_event_ns = event.ts_recv
        await self.store.send(data)
        if fresh:
            await self.taps.send_multipart([topic(event), bytes(envelope.payload)])

    async def _from_writer(self) -> None:
        while True:
            [data] = await self.from_writer.recv()
            try:
                msg = decode_message(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.from_writer.refuse("undecodable", "undecodable message dropped: {}", exc)
                continue
            if isinstance(msg, Ack | ResendFrom):
                await self.ingest.send_multipart([msg.source.encode(), data])
            else:
                self.from_writer.refuse("type", "unexpected {} dropped", type(msg).__name__)

    async def _drain(self) -> None:
        """Stopping: keep relaying until the collectors have been quiet for a moment."""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and time.monotonic() - self.last_ingest < DRAIN_IDLE_S:
            await asyncio.sleep(0.05)


@click.command()
@click.option("--topology", "topology_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--catalog", default=None, help="Override the topology's catalog path.")
def main(topology_path: str, catalog: str | None) -> None:
    async def actor(topo: Topology, stop: asyncio.Event, stats: Stats) -> None:
        await Validator(topo, stop, stats).run()

    run_actor("validator", topology_path, catalog, actor)


if __name__ == "__main__":
    main()
