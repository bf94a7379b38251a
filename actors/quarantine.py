"""Events the writer could not store, set aside so that nothing is lost and the rest goes on.

When writing one kind and instrument keeps failing (writer_batches.WRITE_ATTEMPTS flushes in a row: a
file name the file system refuses, a directory it may not write, a bug), its events are written
here, and their WAL segment is then dropped like any stored batch:

    <run_dir>/quarantine/<UTC time>-<kind>-<instrument>.jsonl   (0600, in a 0700 directory)

one JSON line per event: {"reason": why, "directory": "<kind>/<instrument_id>", "event": the
event as tagged msgspec JSON}. Once the cause is fixed, store them again (the mesh stopped, as
its writer holds the catalog):

    python -m actors.quarantine --catalog catalog run/quarantine/*.jsonl
"""

import itertools
import os
import re
from pathlib import Path

import click
import msgspec

from storage.lock import CatalogLock
from storage.store import CatalogStore, GroupFailure
from messages.events import AnyEvent
from messages.timeunits import stamp


class Quarantined(msgspec.Struct, frozen=True):
    reason: str
    directory: str
    event: AnyEvent


def set_aside(folder: Path, failure: GroupFailure, reason: str) -> Path:
    """Write `failure.events` to a new file in `folder`, synced; returns its path."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind, _, instrument = failure.directory.partition("/")
    safe = re.sub(r"[^\w.:@+-]", "_", instrument)[:60]  # the id may be the very name that was refused
    name = f"{stamp()}-{kind}-{safe}"
    encode = msgspec.json.Encoder().encode
    lines = b"".join(encode(Quarantined(reason, failure.directory, e)) + b"\n" for e in failure.events)
    for n in itertools.count(1):
        path = folder / f"{name}{f'~{n}' if n > 1 else ''}.jsonl"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:  # the same instrument set aside twice within a second
            continue
    with os.fdopen(fd, "wb") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())
    return path


def read(path: Path) -> list[Quarantined]:
    """The records of one quarantine file (events checked by the strict typed decoder)."""
    decode = msgspec.json.Decoder(Quarantined).decode
    return [decode(line) for line in Path(path).read_bytes().splitlines() if line.strip()]


@click.command()
@click.option("--catalog", required=True, type=click.Path(file_okay=False), help="The catalog to store them in.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def main(catalog: str, files: tuple[str, ...]) -> None:
    """Store quarantined events in the catalog (the mesh must be stopped)."""
    try:
        events = [q.event for f in files for q in read(Path(f))]
    except msgspec.ValidationError as exc:
        raise click.ClickException(f"an event cannot be stored as it is: {exc}") from None
    lock = CatalogLock(catalog, {"kind": "cli", "command": "actors.quarantine"})
    if not lock.try_acquire():
        raise click.ClickException(f"{catalog} is being written by another process (a running mesh?): stop it first")
    with lock:
        written = CatalogStore(catalog).write(events)
    click.echo(f"{len(events)} events from {len(files)} files: {sum(written.values())} rows added or changed")


if __name__ == "__main__":
    main()
