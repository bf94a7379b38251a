"""Validator: every event passes here between the collectors and the writer.

    python -m actors.validator --topology topology.yaml

Events arrive in batches (messages/envelope.py `Batch`; a single `Envelope` from an earlier
version is a batch of one). It decodes each event with the strict typed decoder (schema and value constraints, among them
instrument ids the catalog can name a directory after: messages/events.py), checks what a type
cannot express (timestamps not in the future, the id's venue suffix, whether the sender may send
that venue's events), forwards the batch to the writer with the bad events marked in it (index and reason: the
writer stores them as dead letters, their good neighbours as rows, and no seq goes missing
unexplained), and publishes the good ones on the live bus.

Senders: a collector of this mesh, `collector.<venue>` for a venue of the topology, sends only
that venue's events; `derivs history` handing rows to the mesh (cli/handoff.py) is
`cli.history.<venue>.<pid>` and sends only that venue's definitions and history rows. The bus is
private to the user (0700 socket directory; tcp only on loopback), so a name is not a secret:
these rules keep each sender to its venue, so that no sender (buggy or foreign) stores data as
another venue's.
Acks and resend requests from the writer are relayed back to the collector they name.
"""

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import Collection

import click
import msgspec
import zmq
import zmq.asyncio
from loguru import logger

from actors.inbox import YIELD_EVERY, Inbox
from actors.runtime import Stats, essential, run_actor, socket
from actors.taps_cache import LastValueBus
from actors.topology import VENUE_NAMES, Topology
from messages.codec import decode_batch_events, decode_event, decode_message, encode
from messages.envelope import Ack, Batch, Envelope, Heartbeat, ResendFrom
from messages.events import AnyEvent, FundingRate, Gap, Instrument, Liquidation, Malformed, OpenInterest
from messages.timeunits import NS

MAX_FUTURE_NS = 5 * 60 * NS  # venue clocks drift; 5 minutes ahead is not drift
DRAIN_IDLE_S = 0.3  # stopping: the collectors have been quiet this long, so their last events are through
DRAIN_MAX_S = 3.0
TOPIC_KIND = {OpenInterest: "oi", FundingRate: "funding", Instrument: "instrument", Liquidation: "liq", Gap: "gap"}
COLLECTOR, HISTORY = "collector.", "cli.history."
# What `derivs history` hands to a mesh (cli/history.py): definitions and history rows, no live data;
# gaps of open interest: the archive's missing or unusable days (cli/history_archive.py).
HISTORY_KINDS = (Instrument, OpenInterest, FundingRate, Gap)
# What a valid value looks like, for the reason of a refused one (msgspec names the rule, not the idea).
FIELD_HINTS = {
    "instrument_id": "an instrument id is SYMBOL.VENUE, at most 60 characters: letters, digits, . : @ + - _",
}


def check(event: AnyEvent, now_ns: int) -> str | None:
    """What is wrong with a well-typed event, or None."""
    if type(event) is Malformed:  # the collector could not normalize it: never data
        return f"malformed {event.venue} {event.symbol}: {event.reason}"
    for name in ("ts_event", "ts_recv"):
        if getattr(event, name) > now_ns + MAX_FUTURE_NS:
            return f"{name} {getattr(event, name)} is more than 5 min in the future"
    if not event.instrument_id.endswith("." + event.venue):
        return f"instrument_id {event.instrument_id!r} does not belong to venue {event.venue}"
    if type(event) is Gap and event.end_ns < event.ts_event:
        return f"gap ends ({event.end_ns}) before it starts ({event.ts_event})"
    return None


def history_source(venue: str, pid: int) -> str:
    """The name `derivs history` sends under: it announces the one venue it hands rows of."""
    return f"{HISTORY}{venue}.{pid}"


@functools.lru_cache(maxsize=1024)  # asked for every event; a mesh has a handful of senders
def sender_venue(source: str) -> str | None:
    """The venue (as in the topology: `binance`) whose events `source` may send, None if no sender has that name."""
    if source.startswith(COLLECTOR):
        venue = source[len(COLLECTOR):]
    elif source.startswith(HISTORY):
        venue, _, pid = source[len(HISTORY):].partition(".")
        if not pid.isdigit():
            return None
    else:
        return None
    return venue if venue in VENUE_NAMES else None


def known_peer(identity: bytes) -> bool:
    """Only collectors and `derivs history` (see the module doc) send on the ingest socket; anything else is refused."""
    return sender_venue(identity.decode(errors="replace")) is not None


def refuse_sender(source: str, event: AnyEvent, venues: Collection[str]) -> str | None:
    """Why `source` may not send `event` (None if it may); `venues` are the topology's."""
    venue = sender_venue(source)
    if venue is None:
        return f"{source!r} is neither a collector (collector.<venue>) nor derivs history (cli.history.<venue>.<pid>)"
    if source.startswith(COLLECTOR) and venue not in venues:
        return f"{source} is not a collector of this mesh (its venues: {', '.join(sorted(venues))})"
    if event.venue != venue.upper():
        return f"{source} may send {venue.upper()} events only, not {event.venue} ({event.instrument_id})"
    if source.startswith(HISTORY) and (type(event) not in HISTORY_KINDS or (type(event) is FundingRate and not event.settled)
                                       or (type(event) is Gap and event.stream != "open_interest")):
        return (f"{source} (derivs history) sends definitions, open-interest history (and its gaps) and settled funding "
                f"only, not {'live funding' if type(event) is FundingRate else type(event).__name__}")
    return None


def explain(exc: msgspec.ValidationError, payload: bytes | msgspec.Raw) -> str:
    """msgspec's reason, with the refused value and what a valid one looks like where we can say."""
    field = re.search(r"at `\$\.(\w+)`$", str(exc))
    try:
        raw = msgspec.msgpack.decode(payload)
    except msgspec.DecodeError:
        raw = None
    if field is None or not isinstance(raw, dict) or field[1] not in raw:
        return f"invalid event: {exc}"
    value = raw[field[1]]
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:60] + "..." + (f" ({len(value)} characters)" if isinstance(value, str) else "")
    hint = f" ({FIELD_HINTS[field[1]]})" if field[1] in FIELD_HINTS else ""
    return f"invalid event: {field[1]} {shown}: {exc}{hint}"


def validate(envelope: Envelope, now_ns: int) -> tuple[AnyEvent | None, str | None]:
    """(event, None) if good, (None, reason) if not."""
    return validate_payload(envelope.payload, now_ns)


def validate_payload(payload: msgspec.Raw | bytes, now_ns: int) -> tuple[AnyEvent | None, str | None]:
    """`validate` for one encoded event of a batch."""
    try:
        event = decode_event(payload)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
        return None, explain(exc, payload)
    except msgspec.DecodeError as exc:
        return None, f"invalid event: {exc}"
    reason = check(event, now_ns)
    return (None, reason) if reason else (event, None)


def validate_event(event: AnyEvent, now_ns: int) -> tuple[AnyEvent | None, str | None]:
    """`validate` for an event not yet encoded (the CLI): the same constraints and checks."""
    return validate_payload(encode(event), now_ns)


def all_pass(events: list[AnyEvent], source: str, venues: Collection[str], now_ns: int) -> bool:
    """Whether `check` and `refuse_sender` pass every event of a batch, in one pass with no reasons
    (a batch that fails is checked event by event: that says which events and why)."""
    venue = sender_venue(source)
    if venue is None or (source.startswith(COLLECTOR) and venue not in venues):
        return False
    kinds = {type(e) for e in events}
    if Malformed in kinds:
        return False
    if source.startswith(HISTORY) and not (kinds <= set(HISTORY_KINDS) and all(
            e.settled if type(e) is FundingRate else e.stream == "open_interest" for e in events
            if type(e) is FundingRate or type(e) is Gap)):
        return False
    if Gap in kinds and not all(e.end_ns >= e.ts_event for e in events if type(e) is Gap):
        return False
    venue, limit = venue.upper(), now_ns + MAX_FUTURE_NS
    suffix = "." + venue
    return all(e.venue == venue and e.ts_event <= limit and e.ts_recv <= limit and e.instrument_id.endswith(suffix)
               for e in events)


def decode_clean(data: bytes, source: str, venues: Collection[str], now_ns: int) -> list[AnyEvent] | None:
    """The events of an encoded batch if every one is good (one decode for all of them), else None."""
    try:
        events = decode_batch_events(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return events if all_pass(events, source, venues, now_ns) else None


def topic(event: AnyEvent) -> bytes:
    """Live-bus topic, e.g. `oi.BINANCE.BTCUSDT-PERP.BINANCE`: SUB prefixes filter kind and venue."""
    return _topic(type(event), event.venue, event.instrument_id)


@functools.lru_cache(maxsize=100_000)  # asked for every event published; a universe has a few thousand topics
def _topic(kind: type, venue: str, instrument_id: str) -> bytes:
    return f"{TOPIC_KIND[kind]}.{venue}.{instrument_id}".encode()


class Validator:
    def __init__(self, topo: Topology, stop: asyncio.Event, stats: Stats):
        self.stop, self.stats = stop, stats
        self.venues = {v.venue for v in topo.venues}  # whose collectors may send
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
        self.ingested = asyncio.Event()  # set by every message from a collector (the drain waits for quiet)

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
            self.ingested.set()
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
                case Envelope() | Batch() | Heartbeat() if msg.source.encode() != peer:  # acks would go to the named source
                    self.from_collectors.refuse("source", "{} from {!r} claiming source {!r} refused",
                                                type(msg).__name__, peer[:64], msg.source[:64])
                case Batch() if not msg.events:
                    self.from_collectors.refuse("empty", "empty batch from {!r} dropped", peer[:64])
                case Batch():
                    await self._check_and_forward(msg, data)
                case Envelope():  # one event, from a sender of an earlier version
                    await self._check_and_forward(Batch(source=msg.source, epoch=msg.epoch, seq=msg.seq, events=[msg.payload]))
                case Heartbeat():
                    await self.store.send(data)
                case _:
                    self.from_collectors.refuse("type", "unexpected {} from {!r} dropped", type(msg).__name__, peer)

    async def _check_and_forward(self, batch: Batch, data: bytes | None = None) -> None:
        """Validate every event of the batch, publish the good ones that are news (a re-send is
        not news for taps), and forward the batch to the writer with the refused ones marked.

        The usual batch (every event good) costs one decode for all its events (`data`, the
        message as received) and one pass over them (`all_pass`); a batch with a bad event in it
        is checked event by event, which says which and why."""
        now = time.time_ns()
        events = decode_clean(data, batch.source, self.venues, now) if data is not None else None
        rejected: list[tuple[int, str]] = []
        if events is None:
            events = []
            for i, payload in enumerate(batch.events):
                event, reason = validate_payload(payload, now)
                if event is not None and (reason := refuse_sender(batch.source, event, self.venues)):
                    event = None
                if event is None:
                    rejected.append((i, reason))
                    logger.bind(venue="-").warning("rejected {} seq {}: {}", batch.source, batch.seq + i, reason)
                events.append(event)
        self.rejected += len(rejected)
        self.passed += len(batch.events) - len(rejected)
        self.stats.events_in += len(batch.events)
        self.stats.events_out += len(batch.events)
        if len(rejected) < len(events):
            self.stats.last_event_ns = next(e.ts_recv for e in reversed(events) if e is not None)
        self._publish(batch, events)  # first: a tap's latency is not the writer's business
        await self.store.send(encode(msgspec.structs.replace(batch, rejected=rejected)))
        if len(batch.events) >= YIELD_EVERY:
            await asyncio.sleep(0)  # a big batch is as much work as YIELD_EVERY messages: let the rest of the process run

    def _publish(self, batch: Batch, events: list[AnyEvent | None]) -> None:
        """The good events that are news, on the live bus: all of them while a tap listens for
        their topics, else only the newest of each topic (the cache a new tap is given)."""
        fresh = self.taps.fresh_in(batch.source, batch.epoch, batch.seq, batch.last)
        news = [i for i, event in enumerate(events) if event is not None and fresh[i]]
        if not self.taps.listening():
            news = list({(type(events[i]), events[i].instrument_id): i for i in news}.values())
        self.taps.publish([(topic(events[i]), bytes(batch.events[i])) for i in news])

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
        """Stopping: keep relaying until the collectors have been quiet for DRAIN_IDLE_S (at most DRAIN_MAX_S)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_MAX_S):
                while (quiet_for := time.monotonic() - self.last_ingest) < DRAIN_IDLE_S:
                    self.ingested.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(DRAIN_IDLE_S - quiet_for):
                            await self.ingested.wait()


@click.command()
@click.option("--topology", "topology_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--catalog", default=None, help="Override the topology's catalog path.")
def main(topology_path: str, catalog: str | None) -> None:
    async def actor(topo: Topology, stop: asyncio.Event, stats: Stats) -> None:
        await Validator(topo, stop, stats).run()

    run_actor("validator", topology_path, catalog, actor)


if __name__ == "__main__":
    main()
