"""Where `derivs history` puts the rows it fetched: the writer stays the only process that writes
the catalog.

- A mesh is running on the catalog (its writer holds `<catalog>/.writer.lock`,
  storage/lock.py): the rows are handed to it. The CLI connects to the mesh's ingest
  endpoint as a DEALER, exactly like a collector (source `cli.history.<venue>.<pid>`, an `Outbox` for
  numbering and re-sending), and waits until the writer has acknowledged every row (it is then
  in the writer's synced WAL, and in Parquet after the writer's next flush).
- No mesh: the CLI takes the lock itself for the moment it writes, and writes with the writer's
  own storage code (`CatalogStore.write`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass

import click
import msgspec
import zmq
import zmq.asyncio

from storage.lock import CatalogLock, describe, holder, lock_path, running_writer
from storage.store import CatalogStore
from actors.outbox import Outbox
from actors.runtime import socket
from actors.validator import history_source
from messages.codec import decode_message
from messages.envelope import Ack, ResendFrom
from messages.events import AnyEvent, Instrument

WINDOW = 2000  # unacknowledged rows in flight at most
STALL_TIMEOUT_S = 30.0  # no acknowledgement for this long: the mesh is not taking our rows
LOCK_WAIT_S = 60.0  # another CLI writing directly: wait this long for it


class HandOffError(click.ClickException):
    """The running mesh did not take the rows."""


@dataclass
class Stored:
    via: str  # "mesh" | "direct"
    rows: int  # mesh: rows acknowledged by its writer; direct: rows added or changed
    mesh: str = ""


class Sink:
    """Stores batches of events for `derivs history` (see the module doc)."""

    def __init__(self, catalog: str, fallback_endpoint: str | None = None, show_progress: bool = False) -> None:
        self.catalog = catalog
        self.fallback_endpoint = fallback_endpoint
        self.show_progress = show_progress

    async def store(self, events: list[AnyEvent], label: str) -> Stored:
        """Hand `events` to the running mesh, or write them. Stored.rows counts data rows only
        (not instrument definitions, nor the `funding_rate_update` copy of funding rows)."""
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            info = running_writer(self.catalog)
            if info is not None:
                endpoint = info.get("ingest") or self.fallback_endpoint
                if not endpoint:
                    raise HandOffError(f"a mesh writer ({describe(info)}) holds {self.catalog}, but its ingest endpoint "
                                       "is unknown: pass --topology with that mesh's topology file")
                n = await hand_off(events, endpoint, label=f"{label} -> mesh {info.get('mesh')!r}",
                                   show_progress=self.show_progress)
                definitions = sum(isinstance(e, Instrument) for e in events)
                return Stored("mesh", max(0, n - definitions), str(info.get("mesh", "")))
            lock = CatalogLock(self.catalog, {"kind": "cli", "command": "derivs history"})
            if lock.try_acquire():
                with lock:
                    written = CatalogStore(self.catalog).write(events)
                return Stored("direct", sum(n for k, n in written.items()
                                            if not k.startswith(("crypto_perpetual", "funding_rate_update"))))
            if time.monotonic() > deadline:
                raise click.ClickException(f"{lock_path(self.catalog)} is held by "
                                           f"{describe(holder(self.catalog) or {})} for more than {LOCK_WAIT_S:.0f}s")
            await asyncio.sleep(0.1)  # another CLI is writing (or a writer is just starting): look again


async def hand_off(events: list[AnyEvent], endpoint: str, *, label: str = "", show_progress: bool = False,
                   stall_timeout_s: float = STALL_TIMEOUT_S) -> int:
    """Send `events` through the mesh (validator -> writer) as a collector does; return when the
    writer has acknowledged all of them (the number of events). HandOffError if it stops answering.
    The events are of one venue: the validator lets us send that venue's rows only."""
    venues = {e.venue for e in events}
    if len(venues) != 1:
        raise ValueError(f"one hand-off carries one venue's events, not {sorted(venues) or 'none'}")
    source = history_source(venues.pop().lower(), os.getpid())
    outbox = Outbox(source, sender_driven=True)  # sent in batches (`next_batch`), as a collector sends
    ctx = zmq.asyncio.Context()
    sock = socket(ctx, zmq.DEALER, identity=source)
    sock.connect(endpoint)
    bar = click.progressbar(length=len(events), label=label, file=sys.stderr, show_eta=True) if show_progress else None
    if bar is not None:
        bar.__enter__()
    sent = done = 0
    last_progress = time.monotonic()
    try:
        while sent < len(events) or len(outbox):
            while sent < len(events) and len(outbox) < WINDOW:
                outbox.add(events[sent])
                sent += 1
            while batch := outbox.next_batch():  # what waits (new, or re-sent after a rewind), in batches
                await sock.send(batch[1])
                outbox.mark_sent(batch[0])
            if await sock.poll(100):
                msg = _reply(await sock.recv())
                if isinstance(msg, Ack):
                    outbox.ack(msg.epoch, msg.seq)
                elif isinstance(msg, ResendFrom):
                    outbox.resend_from(msg.epoch, msg.seq)  # rewinds: sent again by the loop above
            outbox.due()  # the same, after a timeout without acknowledgements
            if outbox.acked > done:
                if bar is not None:
                    bar.update(outbox.acked - done)
                done, last_progress = outbox.acked, time.monotonic()
            elif time.monotonic() - last_progress > stall_timeout_s:
                raise HandOffError(f"the running mesh at {endpoint} acknowledged {done} of {len(events)} rows and then "
                                   f"nothing for {stall_timeout_s:.0f}s (is its validator or writer down? see its logs)")
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        sock.close()
        ctx.term()
    return done


def _reply(data: bytes) -> object:
    """An ack or a resend request from the mesh; anything undecodable (a buggy peer) is ignored."""
    try:
        return decode_message(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
