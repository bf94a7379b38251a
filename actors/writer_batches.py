"""The writer's rows between its WAL and Parquet (owns `Pending`, `Batch` and `BatchWriter`):
what was accepted since the last flush, and what one flush puts on disk: the rows of the sealed
WAL segments into the catalog, the refused events into `<run_dir>/deadletter.jsonl`.

It runs in a thread (actors/writer.py goes on accepting meanwhile) and touches nothing the
event loop uses. A kind and instrument that fails to store concerns that directory only: its
rows come back to be tried at the next flush, and after WRITE_ATTEMPTS failures in a row they
are set aside in `<run_dir>/quarantine/` (actors/quarantine.py) with the error. A full disk,
or a dead-letter file that cannot be written, is raised: nothing else could be written either.
"""

import errno
import json
import os
from pathlib import Path
from typing import NamedTuple

import msgspec
import pyarrow as pa
from loguru import logger

from actors.quarantine import set_aside
from storage.store import CatalogStore, GroupFailure
from messages.envelope import Rejected
from messages.events import AnyEvent

WRITE_ATTEMPTS = 3  # flushes in a row that failed to store one kind and instrument: its rows are set aside
RETRY_AFTER_S = 1.0  # the writer tries a failed directory again at its next flush, this soon


class Batch(NamedTuple):
    """What one flush puts in Parquet: the rows of the sealed WAL segments up to `segment`."""

    rows: list[AnyEvent]
    dead: list[Rejected]
    segment: Path


class Pending:
    """Events accepted since the last flush, in order; the first `synced_*` are in the synced WAL
    (only those may be acknowledged, and only those survive a failed sync)."""

    def __init__(self) -> None:
        self.rows: list[AnyEvent] = []
        self.dead: list[Rejected] = []
        self.synced_rows = self.synced_dead = 0

    def __len__(self) -> int:
        return len(self.rows) + len(self.dead)

    def unsynced_rows(self) -> list[AnyEvent]:
        return self.rows[self.synced_rows:]

    def synced(self) -> None:
        self.synced_rows, self.synced_dead = len(self.rows), len(self.dead)

    def forget_unsynced(self) -> None:
        """The WAL sync failed: what it did not hold was never acknowledged, so it goes."""
        del self.rows[self.synced_rows:]
        del self.dead[self.synced_dead:]

    def take(self, segment: Path) -> Batch:
        """Everything (synced: the WAL was sealed into `segment`) becomes the batch to write."""
        batch = Batch(self.rows, self.dead, segment)
        self.rows, self.dead = [], []
        self.synced_rows = self.synced_dead = 0
        return batch

    def give_back(self, batch: Batch) -> None:
        """A flush failed: its rows go back in front of the newer ones (its segment stays on disk);
        the next flush writes them all and then drops every segment up to its own."""
        self.rows[:0], self.dead[:0] = batch.rows, batch.dead
        self.synced_rows += len(batch.rows)
        self.synced_dead += len(batch.dead)


def describe_error(exc: BaseException) -> str:
    """An error as a log line should say it: the OS error by name, and the file it concerns."""
    if isinstance(exc, OSError) and exc.errno:
        text = f"{errno.errorcode.get(exc.errno, 'OSError')}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text + "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))


class BatchWriter:
    def __init__(self, store: CatalogStore, deadletter_path: Path, quarantine_dir: Path):
        self.store, self.deadletter_path, self.quarantine_dir = store, deadletter_path, quarantine_dir
        self.failures: dict[str, int] = {}  # `<kind>/<instrument>` -> flushes in a row that failed it

    def write(self, batch: Batch) -> tuple[dict[str, int], list[AnyEvent]]:
        """In a thread. Returns rows written per directory and the events to try again at the next flush."""
        failed: list[GroupFailure] = []
        try:
            written = self.store.write(batch.rows, failed)
        finally:
            # A flush re-writes the day's file (up to 8 MB, streamed a row group at a time):
            # pyarrow's allocator would keep the pages, and RSS saw-toothed with the file's size.
            # Handing them back keeps it flat (bench/writer_memory.py).
            pa.default_memory_pool().release_unused()
        for directory in written:
            self.failures.pop(directory, None)
        retry: list[AnyEvent] = []
        for failure in failed:
            attempts = self.failures[failure.directory] = self.failures.get(failure.directory, 0) + 1
            reason = describe_error(failure.error)
            if attempts < WRITE_ATTEMPTS:
                logger.warning("storing {} events in {} failed (attempt {} of {}): {}; the rest is stored, these are "
                               "tried again in {:.0f}s", len(failure.events), failure.directory, attempts,
                               WRITE_ATTEMPTS, reason, RETRY_AFTER_S)
                retry += failure.events
                continue
            path = set_aside(self.quarantine_dir, failure, reason)
            del self.failures[failure.directory]
            logger.error("storing {} events in {} failed {} times: {}. They are set aside in {} (inspect it; once the "
                         "cause is fixed, `python -m actors.quarantine --catalog CATALOG FILE` stores them); "
                         "storage of everything else goes on", len(failure.events), failure.directory, attempts,
                         reason, path)
        self._write_dead_letters(batch.dead)
        return written, retry

    def _write_dead_letters(self, dead: list[Rejected]) -> None:
        if not dead:
            return
        lines = "".join(json.dumps({"source": r.source, "epoch": r.epoch, "seq": r.seq, "reason": r.reason, "payload": _readable(r.payload)}, default=str) + "\n" for r in dead)
        fd = os.open(self.deadletter_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, lines.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _readable(payload: bytes) -> object:
    """A refused payload as JSON-able data if it is msgpack at all, else its hex."""
    try:
        return msgspec.msgpack.decode(payload)
    except msgspec.DecodeError:
        return payload.hex()
