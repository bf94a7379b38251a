"""The mesh's live bus for a consumer on an asyncio loop (the node's): subscriptions per topic
that change at any time, connection watching, and no event twice.

Reading the bus is `actors.tap.bus_events` (the wire format lives there) on a zmq.asyncio SUB:
nothing here blocks the loop. ZeroMQ itself re-connects to a restarted validator and renews the
subscriptions; this class says so in the log and forgets the replay filter, so the restarted
bus's last values come through. A new topic subscription makes the bus replay that topic's last
value at once (actors/taps_cache.py); a second subscriber to a topic already subscribed gets
the last event kept here (`last_event`).

A restarted validator does not know what it already published, so collectors' re-sends of
events the writer had not yet acknowledged reach the bus again; `SeenRecently` drops such exact
repeats. A *correction* passes: an event with the natural key (instrument, ts_init) of an earlier
one and other values (a gap whose end is extended after a restart) replaces that row in the
catalog, and reaches the strategy as a second object with the same `ts_init`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable

import msgspec
import zmq
import zmq.asyncio
from nautilus_trader.common.component import Logger
from zmq.utils.monitor import parse_monitor_message

from actors.inbox import MAX_MESSAGE_BYTES
from actors.tap import NO_BUS_AFTER_S, bus_events
from actors.validator import TOPIC_KIND
from messages.events import AnyEvent

BURST = 200  # events handed over at once at most: the loop is never held for more than ~10 ms
RECENT_KEYS = 10_000  # per topic: far more than one restart re-sends of one instrument's stream


def topic_of(event: AnyEvent) -> bytes:
    return f"{TOPIC_KIND[type(event)]}.{event.venue}.{event.instrument_id}".encode()


class SeenRecently:
    """The last RECENT_KEYS events of each topic (an event is its whole content: a re-send is
    equal to it; a correction of a stored row, e.g. a gap extended after a restart, is not)."""

    def __init__(self) -> None:
        self.events: dict[bytes, OrderedDict] = {}

    def first_time(self, topic: bytes, event: AnyEvent) -> bool:
        events = self.events.setdefault(topic, OrderedDict())
        if event in events:
            return False
        events[event] = None
        if len(events) > RECENT_KEYS:
            events.popitem(last=False)
        return True

    def forget(self, prefix: bytes) -> None:
        for topic in [t for t in self.events if t.startswith(prefix)]:
            del self.events[topic]


class BusSubscriber:
    """Call `start()` on the running loop, `subscribe(topic)` / `unsubscribe(topic)` any time;
    `on_events([(topic, event), ...])` is called on the loop with the new events, in bursts."""

    def __init__(self, endpoint: str, on_events: Callable[[list[tuple[bytes, AnyEvent]]], None], logger: Logger,
                 no_bus_after_s: float = NO_BUS_AFTER_S) -> None:
        self.endpoint, self.on_events, self.log, self.no_bus_after_s = endpoint, on_events, logger, no_bus_after_s
        self.ctx: zmq.asyncio.Context | None = None
        self.sock: zmq.asyncio.Socket | None = None
        self.topics: dict[bytes, int] = {}  # topic prefix -> subscribers
        self.replayed: dict[bytes, bytes] = {}  # actors.tap.bus_events' repeat filter
        self.seen = SeenRecently()
        self.last_event: dict[bytes, AnyEvent] = {}
        self.connected = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 1_000_000)  # a cascade must not overflow us while the loop is busy
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        monitor = self.sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)  # before connect
        for topic in self.topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        self.sock.connect(self.endpoint)
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._watch(monitor)), loop.create_task(self._read())]

    def subscribe(self, topic: bytes) -> bool:
        """Subscribe to a topic (or prefix); False if it already was (then nothing is replayed)."""
        self.topics[topic] = self.topics.get(topic, 0) + 1
        if self.topics[topic] > 1:
            return False
        for t in [t for t in self.replayed if t.startswith(topic)]:  # the replay we ask for must pass
            del self.replayed[t]
        self.seen.forget(topic)
        if self.sock is not None:
            self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        return True

    def unsubscribe(self, topic: bytes) -> None:
        if topic not in self.topics:
            return
        self.topics[topic] -= 1
        if self.topics[topic] == 0:
            del self.topics[topic]
            if self.sock is not None:
                self.sock.setsockopt(zmq.UNSUBSCRIBE, topic)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks = []
        if self.sock is not None:
            self.sock.disable_monitor()
            self.sock.close()
            self.ctx.term()
            self.sock = self.ctx = None

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        """Log the bus coming and going; ZeroMQ does the re-connecting and re-subscribing."""
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.no_bus_after_s):
                    await self._next_connection(monitor)
            if not self.connected.is_set():
                self.log.warning(f"nothing publishes on {self.endpoint}: is the mesh running? (start it with "
                                 "`bin/launch TOPOLOGY`); connecting as soon as it is")
            while True:
                await self._next_connection(monitor)
        finally:
            monitor.close()

    async def _next_connection(self, monitor: zmq.asyncio.Socket) -> None:
        while True:
            event = parse_monitor_message(await monitor.recv_multipart())["event"]
            if event == zmq.EVENT_CONNECTED:
                self.replayed.clear()  # a restarted bus may send the same bytes again: new events
                self.connected.set()
                self.log.info(f"connected to the mesh's live bus {self.endpoint} ({len(self.topics)} topics)")
                return
            if event == zmq.EVENT_DISCONNECTED:
                self.connected.clear()
                self.log.warning(f"lost the mesh's live bus {self.endpoint} (mesh or validator stopped): "
                                 "re-connecting, subscriptions are renewed")

    async def _read(self) -> None:
        """Wait for the bus without blocking the loop (zmq.asyncio's poll), then take what is
        there (up to BURST messages) with plain non-blocking reads and hand it over at once: a
        zmq.asyncio receive per message costs ~10x the message, and converting a burst at once
        costs a fraction of one event at a time. Then the loop's other tasks run."""
        raw = zmq.Socket.shadow(self.sock.underlying)
        while True:
            await self.sock.poll(flags=zmq.POLLIN)
            fresh: list[tuple[bytes, AnyEvent]] = []
            while len(fresh) < BURST:
                try:
                    frames = raw.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    events = bus_events(frames, self.replayed)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self.log.warning(f"undecodable message on {frames[0]!r}: {exc}")
                    continue
                for event in events:
                    topic = topic_of(event)
                    if self.seen.first_time(topic, event):
                        self.last_event[topic] = event
                        fresh.append((topic, event))
            if fresh:
                try:
                    self.on_events(fresh)
                except Exception as exc:  # one bad burst must not stop the feed
                    self.log.error(f"could not deliver {len(fresh)} events: {exc!r}")
            await asyncio.sleep(0)
