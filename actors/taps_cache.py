"""The live bus with a last-value cache: a tap that connects late gets the last value per stream.

The validator publishes every good event on one socket (`topo.endpoint("taps")`), topic
`<kind>.<VENUE>.<INSTRUMENT_ID>`, frame 2 the msgpack event. A plain PUB would give a new
subscriber nothing until the next event of each stream (a quiet instrument: minutes). This is
the zguide's "Last Value Caching" pattern on the publishing socket itself:

- the socket is an XPUB with `XPUB_VERBOSE`, so *every* subscribe message reaches us (a plain
  XPUB passes only the first subscriber of a prefix);
- we keep the last message of every topic (one per kind x instrument: a few hundred at most);
- on each subscribe message for prefix P we re-send the cached message of every topic that
  starts with P, right away;
- we know which prefixes are subscribed (an unsubscribe message reaches us once no tap has the
  prefix any more: a tap's close or `kill -9` too, a little later), so nothing is sent for a
  topic no tap subscribes to: a mesh without taps pays no send per event. Subscriptions that
  arrived are read before each publish, so a new tap misses nothing after its replay.

The cost of doing it on one bus: XPUB cannot send to one subscriber only, so the replay goes to
every subscriber whose prefix matches that topic. A subscriber that was already connected may
therefore see the last value of a topic twice (the same bytes again) when another tap attaches.
`actors/tap.py` drops a message identical to the previous one on the same topic; a plain SUB
should do the same if it counts events (docs/liquidations.md). A replay never goes back in
time: it is always the newest message of the topic at that moment.

Each event is published once: a collector re-sends what the writer has not acknowledged in
time, and the validator passes the re-send to the writer but not to the bus (`first_time`;
an event first seen late, after newer ones, is still published, late).

Sending never blocks: no `XPUB_NODROP`, so a tap slower than the bus loses messages (past
`SNDHWM` per tap) and storage never waits for a tap. Attaching and detaching taps touches
neither the validator's path to the writer nor the cache's size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import zmq
import zmq.asyncio
from loguru import logger

from actors.inbox import MAX_MESSAGE_BYTES

SUBSCRIBE, UNSUBSCRIBE = 1, 0
_MORE = int(zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
TAKE_AT_ONCE = 10  # subscriptions taken (and replayed to) between two turns of the event loop
MAX_TOPICS = 100_000  # topics whose match is remembered (a universe has a few thousand)
MAX_OUT_OF_ORDER = 100_000  # seqs seen ahead of a hole that are remembered
LOOK_EVERY_MS = 50  # for subscriptions, at the latest (see `serve`)
DEFAULT_SNDHWM = 100_000  # per tap: a cascade burst must not overflow a tap that keeps up on average


def matching(cache: dict[bytes, bytes], prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(topic, payload) of every cached topic a SUB with `prefix` receives (b"" = all)."""
    for topic, payload in list(cache.items()):
        if topic.startswith(prefix):
            yield topic, payload


class LastValueBus:
    """An XPUB publisher that replays the last message per topic to each new subscription.

    Drop-in for the PUB it replaces: `await bus.send_multipart([topic, payload])` (or
    `bus.publish(messages)`), `close()`;
    run `await bus.serve()` as a task to answer subscriptions.
    """

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, *, sndhwm: int = DEFAULT_SNDHWM) -> None:
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # what a subscriber sends: a prefix
        self.sock.bind(endpoint)
        self._now = zmq.Socket.shadow(self.sock.underlying)  # the same socket, sent to without awaiting
        self.endpoint = endpoint
        self.last: dict[bytes, bytes] = {}
        # (source, epoch) -> [every seq <= this was seen, seqs seen above it]
        self.seen: dict[tuple[str, int], list] = {}
        self.prefixes: set[bytes] = set()  # what the taps subscribe to, as libzmq tells us
        self.wanted: dict[bytes, bool] = {}  # topic -> some tap subscribes to it (forgotten when prefixes change)
        self.subscriptions = 0
        self.replayed = 0

    def fresh_in(self, source: str, epoch: int, first: int, last: int) -> list[bool]:
        """`first_time` for the seqs first..last of a batch, each in turn; the usual case, the
        batch that follows everything seen so far, without a set operation per seq."""
        seen = self.seen.setdefault((source, epoch), [0, set()])
        if first == seen[0] + 1 and not seen[1]:
            seen[0] = last
            return [True] * (last - first + 1)
        return [self.first_time(source, epoch, seq) for seq in range(first, last + 1)]

    def first_time(self, source: str, epoch: int, seq: int) -> bool:
        """True the first time this (source, epoch, seq) comes by (call it for every envelope,
        good or rejected). The storage path re-sends what the writer has not acknowledged in
        time, and a collector that could not send at once (its socket full) sends later, out of
        order: a tap must see each event once, late rather than never."""
        seen = self.seen.setdefault((source, epoch), [0, set()])
        if seq <= seen[0] or seq in seen[1]:
            return False
        seen[1].add(seq)
        if len(seen[1]) > MAX_OUT_OF_ORDER:  # a hole that never fills: stop waiting for it (bounded memory)
            seen[0] = min(seen[1]) - 1
        while seen[0] + 1 in seen[1]:
            seen[0] += 1
            seen[1].discard(seen[0])
        return True

    async def send_multipart(self, frames: list[bytes]) -> None:
        self.publish([frames])

    def listening(self) -> bool:
        """Whether any tap subscribes to anything (subscriptions that arrived are taken in first)."""
        return self._take_subscriptions(at_most=TAKE_AT_ONCE) == TAKE_AT_ONCE or bool(self.prefixes)

    def publish(self, messages: list[tuple[bytes, bytes]] | list[list[bytes]]) -> None:
        """Keep the newest message of each topic and send those a tap subscribes to, now.
        Subscriptions that arrived are taken in first, so none misses what follows it. An XPUB
        without XPUB_NODROP never blocks (a full tap loses them), so a plain send on the same
        socket, without a future per message; and none for a topic nobody subscribes to (libzmq
        would drop it, after a copy and two calls per event)."""
        # A storm of subscriptions is taken a part at a time (each replays); until all are in, send everything.
        everything = self._take_subscriptions(at_most=TAKE_AT_ONCE) == TAKE_AT_ONCE
        send, last, wanted = self._now.send, self.last, self.wanted
        for topic, payload in messages:
            last[topic] = payload
            if everything or wanted.get(topic) or (topic not in wanted and self._wants(topic)):
                send(topic, _MORE)  # two sends with a plain int flag: a third of send_multipart's cost
                send(payload)

    def _wants(self, topic: bytes) -> bool:
        if len(self.wanted) >= MAX_TOPICS:
            self.wanted.clear()
        wants = self.wanted[topic] = any(topic.startswith(prefix) for prefix in self.prefixes)
        return wants

    def _take_subscriptions(self, at_most: int) -> int:
        """Read the (un)subscribe messages libzmq holds (see the module doc) and answer each
        subscription with the cached values it matches; returns how many were read."""
        taken = 0
        while taken < at_most and self._now.get(zmq.EVENTS) & _POLLIN:
            message = self._now.recv(zmq.NOBLOCK)
            taken += 1
            if not message or message[0] not in (SUBSCRIBE, UNSUBSCRIBE):
                continue  # garbage: nothing to do
            prefix = message[1:]
            if message[0] == UNSUBSCRIBE:  # libzmq passes it once no tap subscribes to the prefix any more
                self.prefixes.discard(prefix)
                self.wanted.clear()
                continue
            if prefix not in self.prefixes:
                self.prefixes.add(prefix)
                self.wanted.clear()
            self.subscriptions += 1
            replay = list(matching(self.last, prefix))
            for topic, payload in replay:
                self._now.send(topic, _MORE)
                self._now.send(payload)
            self.replayed += len(replay)
            logger.debug("tap subscribed to {!r}: replayed the last value of {} topics", prefix, len(replay))
        return taken

    async def serve(self) -> None:
        """Answer subscribe messages with the cached values until cancelled (`publish` does too)."""
        while True:
            # `publish` reads the socket without the event loop, and may take the socket's
            # wake-up for a subscription that arrived meanwhile: look at least every LOOK_EVERY_MS.
            await self.sock.poll(LOOK_EVERY_MS)
            while self._take_subscriptions(at_most=TAKE_AT_ONCE):
                await asyncio.sleep(0)  # a storm of subscriptions must not starve the event path

    def close(self) -> None:
        self.sock.close()
