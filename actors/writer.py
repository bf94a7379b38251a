"""Writer: the only process that writes the catalog. It owns the seq accounting per stream
(accept, acknowledge once synced, ask for re-sends), the WAL's group commit and recovery, and
when to flush; what a flush writes is actors/writer_batches.py.

    python -m actors.writer --topology topology.yaml [--catalog PATH]

Per (source, epoch) it accepts only the next expected seq (a hole asks the collector to
re-send; a repeat is acknowledged again and dropped), appends what it accepts to the WAL,
syncs the WAL (group commit) and only then acknowledges. Events come in batches
(messages/envelope.py `Batch`): a batch is one WAL frame; one that overlaps what was accepted
(a re-send) is cut to its new part first, so replay never doubles a row. Single `Envelope` and
`Rejected` messages (an earlier version's WAL) are read as batches of one. Every `flush_interval_s`, and at
shutdown, the accepted rows go to Parquet in the Nautilus layout (storage/store.py): the
WAL is sealed (actors/wal.py), the rows are written in a thread while events go on being
accepted into a new WAL segment, and the sealed segment is deleted once they are in Parquet.
After a crash the WAL is replayed into the catalog on start.
Rejected events go to `<run_dir>/deadletter.jsonl` with their reason.

Disk full (or any error) on the WAL, the dead-letter file or the whole catalog: the writer
forgets what it accepted since the last WAL sync, stops accepting and acknowledging (collectors
keep everything in their outboxes and re-send it), retries every second, and resumes when a
flush succeeds. A failed Parquet write leaves no partial file (temp file + rename).

Any other failure to store one kind and instrument (a name the file system refuses, a corrupt
file that cannot be moved aside, ...) concerns that directory only: its rows are retried at the
next flushes (a second apart) while everything else is stored; after a few failures
they are set aside in `<run_dir>/quarantine/` (actors/quarantine.py) with the error, and their
WAL segment goes as for stored rows. An unreadable Parquet file is moved aside by the store
(storage/store.py).
"""

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import click
import msgspec
import zmq
import zmq.asyncio
from loguru import logger

from storage.compaction import Compactor
from storage.lock import CatalogLock
from storage.store import CatalogStore, out_of_space
from actors.durable_trace import DurableTrace
from actors.inbox import YIELD_EVERY, Inbox
from actors.runtime import Stats, essential, run_actor, socket, wait_or_stop
from actors.topology import Topology
from actors.wal import Torn, Wal
from actors.writer_batches import RETRY_AFTER_S, Batch, BatchWriter, Pending, describe_error
from messages.codec import decode_batch_events, decode_event, encode
from messages.envelope import Ack, Envelope, Heartbeat, Message, Rejected, ResendFrom
from messages.envelope import Batch as Events  # the wire's batch (writer_batches.Batch: what a flush writes)
from messages.events import AnyEvent

RESEND_REQUEST_EVERY_S = 0.05  # a new hole (progress since the last request): ask for the next window soon
# The same hole is asked for again only after this: a re-send of a big backlog takes time to
# arrive, and every request makes the collector go back and send from there again.
RESEND_SAME_AGAIN_S = 3.0
REACK_EVERY_S = 0.5  # a flood of re-sent duplicates gets one repeated ack, not one each
BLOCKED_RETRY_S = RETRY_AFTER_S
BLOCKED_REMIND_S = 30.0

StreamKey = tuple[str, int]  # (source, epoch)
FROM_VALIDATOR = b"validator"  # the only peer of the store socket (identity of its DEALER)


class Checkpoint(Message, frozen=True, kw_only=True, tag="checkpoint"):
    """First WAL frame after a seal: the last seq accepted per stream."""

    streams: list[tuple[str, int, int]]


_wal_decoder = msgspec.msgpack.Decoder(Events | Envelope | Rejected | Checkpoint)
_incoming_decoder = msgspec.msgpack.Decoder(Events | Envelope | Rejected | Heartbeat)
Data = Events | Envelope | Rejected


class Writer:
    def __init__(self, topo: Topology, stop: asyncio.Event, stats: Stats):
        self.topo, self.stop, self.stats = topo, stop, stats
        # Held for our whole life: `derivs history` sees a running mesh and hands its rows to us; a
        # CLI writing directly finishes first (waited for up to 5 s); a second writer is refused.
        self.lock = CatalogLock(topo.catalog, {"kind": "writer", "mesh": topo.mesh, "ingest": topo.endpoint("ingest")})
        self.lock.acquire(timeout_s=5.0)
        self.store = CatalogStore(Path(topo.catalog), append_same_day=True)
        self.compactor = Compactor(self.store.root)  # closed days/months consolidated between flushes
        self.wal = Wal(Path(topo.run_dir) / "writer" / "wal.log")
        self.batches = BatchWriter(self.store, Path(topo.run_dir) / "deadletter.jsonl", Path(topo.run_dir) / "quarantine")
        self.last_seq: dict[StreamKey, int] = {}  # accepted (in the WAL, maybe not synced yet)
        self.durable: dict[StreamKey, int] = {}  # synced: safe to acknowledge
        self.peer: dict[StreamKey, bytes] = {}  # who delivered it (the validator), for acks
        self.resend_asked: dict[StreamKey, tuple[int, float]] = {}  # (after seq, when)
        self.reacked: dict[StreamKey, float] = {}
        self.pending = Pending()  # accepted, not yet in Parquet
        self.blocked_since: float | None = None  # a write failed: accept nothing until a flush succeeds
        self.blocked_reminded = 0.0
        self.last_sync = time.monotonic()
        self.trace = DurableTrace.from_env()  # opt-in (DERIVS_DURABLE_TRACE): when rows became durable, for the bench
        self.ctx = zmq.asyncio.Context()
        self.sock = socket(self.ctx, zmq.ROUTER)
        self.sock.bind(topo.endpoint("store"))  # one writer per catalog: its lock (above) keeps a second out
        self.inbox = Inbox(self.sock, "store", frames=2)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        # In a thread: replaying a large WAL takes a while, and the event loop must keep reporting
        # to the coordinator meanwhile (a silent actor is taken for hung and killed).
        replayed = await asyncio.to_thread(self._recover)
        if replayed:
            logger.warning("recovered {} events from the WAL of an earlier run", replayed)
            await self.flush()
        logger.info("start: catalog {}", self.topo.catalog)
        receiver = essential(self._receive(), "receiving")
        flusher = essential(self._flush_periodically(), "flushing")
        await self.stop.wait()
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        await flusher  # it sees the stop and returns, after the flush it may be in (never cut off mid-write)
        await self._sync_and_ack()
        if not await self.flush():
            logger.error("stopping with {} events not in Parquet: they are in the WAL and are written at the next start",
                         len(self.pending))
        self.wal.close()
        self.lock.release()
        self.inbox.close()
        self.sock.close()
        self.ctx.term()

    def _recover(self) -> int:
        """Take in the WAL of a previous run that did not get to write Parquet; returns the count.

        After a torn sealed segment its checkpoint is not trusted for the streams replayed so
        far: we resume after what we really have, and the collectors re-send the rest or (if
        they forgot it, acknowledged) record it as a gap (see `_check_tail`)."""
        if self.wal.torn_tail is not None:
            logger.warning("WAL {} (never synced, so never acknowledged: re-sent by its collector); cut off",
                           self.wal.torn_tail)
        replayed, torn = 0, False
        for frame in self.wal.replay():
            if isinstance(frame, Torn):
                logger.error("WAL {}: a sealed segment lost acknowledged frames", frame)
                torn = True
                continue
            msg = _wal_decoder.decode(frame)
            if isinstance(msg, Checkpoint):
                for s, e, q in msg.streams:
                    self.last_seq[(s, e)] = min(q, self.last_seq.get((s, e), q)) if torn else q
                torn = False
                continue
            replayed += self._accept(msg, frame, log_to_wal=False)
        self.durable = dict(self.last_seq)
        self.pending.synced()  # all of it is on disk
        return replayed

    # -- receiving ------------------------------------------------------------------------

    async def _receive(self) -> None:
        cfg = self.topo.writer
        while True:
            timeout_ms = max(1, int((cfg.wal_sync_interval_s - (time.monotonic() - self.last_sync)) * 1000))
            if self.wal.unsynced and await self.sock.poll(timeout_ms) == 0:
                await self._sync_and_ack()
                continue
            peer, data = await self.inbox.recv()
            if peer != FROM_VALIDATOR:  # everything stored has passed the validator
                self.inbox.refuse("peer", "message from unknown peer {!r} refused", peer)
                continue
            try:
                msg = _incoming_decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.inbox.refuse("undecodable", "undecodable message from {!r} dropped: {}", peer, exc)
                continue
            if isinstance(msg, Heartbeat):
                await self._check_tail(peer, msg)
            else:
                await self._on_data(peer, msg, data)
                if isinstance(msg, Events) and len(msg.events) >= YIELD_EVERY:
                    await asyncio.sleep(0)  # as much work as YIELD_EVERY messages: let the flusher and the rest run
            if self.wal.unsynced >= cfg.wal_sync_events or time.monotonic() - self.last_sync >= cfg.wal_sync_interval_s:
                await self._sync_and_ack()

    async def _on_data(self, peer: bytes, msg: Data, data: bytes) -> None:
        if self.blocked_since is not None:
            return  # not accepted, not acknowledged: its collector keeps it and re-sends it
        key = (msg.source, msg.epoch)
        self.peer[key] = peer
        expected = self.last_seq.get(key, 0) + 1
        if msg.seq <= expected <= _last(msg):
            if msg.seq < expected:  # a re-sent batch that overlaps what we have: its new part only
                msg = _from(msg, expected)
                data = encode(msg)
            self._accept(msg, data, log_to_wal=True)
        elif msg.seq < expected:
            now = time.monotonic()
            if key in self.durable and now - self.reacked.get(key, 0.0) >= REACK_EVERY_S:
                self.reacked[key] = now  # a re-send of something already durable: ack again
                await self._send(peer, Ack(source=msg.source, epoch=msg.epoch, seq=self.durable[key]))
        else:
            await self._ask_resend(peer, key, expected - 1)

    def _accept(self, msg: Data, frame: bytes, *, log_to_wal: bool) -> int:
        """Take in a message (its seqs follow the last accepted); returns how many events it held."""
        count = _last(msg) - msg.seq + 1
        if log_to_wal:
            self.wal.append(frame, count)
        self.last_seq[(msg.source, msg.epoch)] = _last(msg)
        if (rows := _all_rows(msg, frame)) is not None:  # the usual batch: every event passed the validator
            self.pending.rows += rows
            self.stats.last_event_ns = rows[-1].ts_recv
        else:
            for item in _entries(msg):
                if isinstance(item, Rejected):
                    self.pending.dead.append(item)
                else:
                    self.pending.rows.append(item)
                    self.stats.last_event_ns = item.ts_recv
        self.stats.events_in += count
        self.stats.queue_depth = len(self.pending)
        return count

    async def _check_tail(self, peer: bytes, hb: Heartbeat) -> None:
        """A heartbeat names the last seq sent: if we lack some of it, the tail was lost (the
        re-send request also tells a collector that forgot it, acknowledged, that our WAL lost
        it). And up to where its sender recorded such a loss as a gap: waiting for those events
        would stop the stream for good."""
        key = (hb.source, hb.epoch)
        last = self.last_seq.get(key, 0)
        if hb.lost_from <= last + 1 <= hb.forgotten and self.blocked_since is None:
            logger.error("{} epoch {}: events {}..{} were acknowledged but are not in the WAL (cut or lost?); "
                         "its collector recorded them as a gap", hb.source, hb.epoch, last + 1, hb.forgotten)
            self.last_seq[key] = self.durable[key] = last = hb.forgotten
            self.peer[key] = peer
        if hb.seq > last:
            await self._ask_resend(peer, key, last)

    async def _ask_resend(self, peer: bytes, key: StreamKey, after: int) -> None:
        now = time.monotonic()
        asked_after, asked_at = self.resend_asked.get(key, (-1, 0.0))
        wait = RESEND_SAME_AGAIN_S if asked_after == after else RESEND_REQUEST_EVERY_S
        if now - asked_at >= wait:
            self.resend_asked[key] = (after, now)
            logger.debug("hole in {} after seq {}: asking for a re-send", key[0], after)
            await self._send(peer, ResendFrom(source=key[0], epoch=key[1], seq=after))

    def _sync_wal(self) -> None:
        """Group commit. On failure forget what was accepted since the last sync (never acked)."""
        if self.wal.unsynced:
            try:
                self.wal.sync()
            except OSError:
                self.last_seq = dict(self.durable)
                self.pending.forget_unsynced()
                self.stats.queue_depth = len(self.pending)
                raise
            if self.trace is not None:
                self.trace.synced(self.pending.unsynced_rows())
        self.pending.synced()

    def _block(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self.blocked_since is None:
            self.blocked_since = self.blocked_reminded = now
            logger.error("{} failed: {}.{} Not accepting or acknowledging events until it works again "
                         "(collectors keep theirs and re-send); retrying every {:.0f}s", what, describe_error(exc),
                         " The disk is full." if out_of_space(exc) else "", BLOCKED_RETRY_S)
        elif now - self.blocked_reminded >= BLOCKED_REMIND_S:
            self.blocked_reminded = now
            logger.error("still blocked after {:.0f}s: {} failed: {}", now - self.blocked_since, what, describe_error(exc))

    async def _sync_and_ack(self) -> None:
        try:
            self._sync_wal()
        except OSError as exc:
            self._block(f"syncing the WAL {self.wal.path}", exc)
            return
        self.last_sync = time.monotonic()
        for key, seq in self.last_seq.items():
            if self.durable.get(key) != seq:
                self.durable[key] = seq
                if key in self.peer:
                    await self._send(self.peer[key], Ack(source=key[0], epoch=key[1], seq=seq))

    async def _send(self, peer: bytes, msg: Message) -> None:
        await self.sock.send_multipart([peer, encode(msg)])

    # -- Parquet --------------------------------------------------------------------------

    async def _flush_periodically(self) -> None:
        while not self.stop.is_set():
            retry = self.blocked_since is not None or self.batches.failures
            interval = BLOCKED_RETRY_S if retry else self.topo.writer.flush_interval_s
            if not await wait_or_stop(self.stop, interval):
                if await self.flush():  # then a step of compaction (bounded, never beside a flush: same task)
                    await asyncio.to_thread(self.compactor.step)

    async def flush(self) -> bool:
        """Rows and dead letters accepted so far -> Parquet and the dead-letter file.

        The WAL is synced and sealed here; the writing runs in a thread, so the loop goes on
        accepting and acknowledging meanwhile. On failure the rows go back (they and their sealed
        segment are kept), the writer blocks and the next try comes in a second. Rows of a
        directory that failed alone go back, unblocked, for the next try (see the module doc).
        Returns whether everything is stored.
        """
        if not self.pending and self.blocked_since is None:
            return True
        started = time.monotonic()
        try:
            batch = self._seal()
        except OSError as exc:
            self._block(f"syncing the WAL {self.wal.path}", exc)
            return False
        try:
            written, retry = await asyncio.to_thread(self.batches.write, batch)
            if retry:
                self.pending.give_back(Batch(retry, [], batch.segment))  # the segment stays until they are stored
            else:
                self.wal.drop_sealed(batch.segment)
        except Exception as exc:  # a full disk, the dead-letter file, the quarantine: nothing may be dropped
            self.pending.give_back(batch)
            if not isinstance(exc, OSError):
                logger.opt(exception=exc).error("flush failed unexpectedly")
            self._block("writing the catalog", exc)
            return False
        logger.info(
            "flushed {} events in {:.0f} ms: {} new rows in {} of {} directories, {} dead letters",
            len(batch.rows) - len(retry), (time.monotonic() - started) * 1000, sum(written.values()),
            sum(1 for n in written.values() if n), len(written), len(batch.dead),
        )
        logger.debug("rows per directory: {}", written)
        self.stats.events_out += len(batch.rows) - len(retry) + len(batch.dead)
        self.stats.queue_depth = len(self.pending)
        if self.blocked_since is not None:
            logger.warning("writing works again after {:.1f}s: accepting and acknowledging events",
                           time.monotonic() - self.blocked_since)
            self.blocked_since = None
        return not retry

    def _seal(self) -> Batch:
        """Sync the WAL and seal it: what was accepted so far becomes the batch to write."""
        self._sync_wal()
        segment = self.wal.seal(encode(Checkpoint(streams=[(s, e, q) for (s, e), q in self.last_seq.items()])))
        return self.pending.take(segment)


def _last(msg: Data) -> int:
    return msg.last if isinstance(msg, Events) else msg.seq


def _from(batch: Events, seq: int) -> Events:
    """The part of `batch` from `seq` on."""
    cut = seq - batch.seq
    return Events(source=batch.source, epoch=batch.epoch, seq=seq, events=batch.events[cut:],
                 rejected=[(i - cut, reason) for i, reason in batch.rejected if i >= cut])


def _all_rows(msg: Data, frame: bytes) -> list[AnyEvent] | None:
    """A batch's events in one decode if the validator refused none, else None (`_entries` says which)."""
    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
        return decode_batch_events(frame) if isinstance(msg, Events) and not msg.rejected else None
    return None  # one event does not decode


def _entries(msg: Data) -> Iterator[AnyEvent | Rejected]:
    """The events of a message in seq order, each a row or a dead letter."""
    if isinstance(msg, Rejected):
        yield msg
        return
    if isinstance(msg, Envelope):
        msg = Events(source=msg.source, epoch=msg.epoch, seq=msg.seq, events=[msg.payload])
    reasons = dict(msg.rejected)
    for i, payload in enumerate(msg.events):
        reason = reasons.get(i)
        if reason is None:
            try:
                yield decode_event(payload)
                continue
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # Not through our validator (a WAL of an older version with laxer rules): a dead letter, never a crash
                reason = f"invalid event: {exc}"
        yield Rejected(source=msg.source, epoch=msg.epoch, seq=msg.seq + i, reason=reason, payload=bytes(payload))


@click.command()
@click.option("--topology", "topology_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--catalog", default=None, help="Override the topology's catalog path.")
def main(topology_path: str, catalog: str | None) -> None:
    async def actor(topo: Topology, stop: asyncio.Event, stats: Stats) -> None:
        await Writer(topo, stop, stats).run()

    run_actor("writer", topology_path, catalog, actor)


if __name__ == "__main__":
    main()
