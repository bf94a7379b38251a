"""The catalog writer's storage layer: events in, NautilusTrader-readable Parquet out.

`CatalogStore(root).write(events)` turns a batch of `messages.events` structs into one Parquet
file per (kind, instrument) under `root/data/`, in the layout `ParquetDataCatalog` 1.231 reads
as is (`storage/schema.py` has the schemas, `storage/files.py` the file rules and
the crash-safety argument). It is idempotent: the natural key of a row is (instrument_id,
ts_init), a re-sent or re-fetched event adds nothing, and a changed one replaces its row.

A stored file that cannot be read (garbage written into it, a foreign schema) would stop every
write to its directory and make `ParquetDataCatalog` fail on it: when a write to a directory
fails, its unreadable files are moved aside to `root/quarantine/` (out of the catalog's sight)
and the write is tried once more.

Only pyarrow, msgspec, loguru and the stdlib are imported: the writer never loads nautilus_trader.
"""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
from loguru import logger

from storage.batches import build_tables, group_events, group_tables
from storage.durability import Deferred, out_of_space
from storage.files import (
    DataFile,
    fsync_dir,
    list_files,
    merge_into,
    read_files,
    recover,
    replace_files,
)
from storage.paths import data_directory, ids_in
from storage.slots import liquidation_row_slot, next_slot
from storage.schema import (
    CRYPTO_PERPETUAL,
    CRYPTO_PERPETUAL_SCHEMA,
    KINDS,
    LIQUIDATION,
    TS_COLUMNS,
    schema_for,
)
from storage.tiers import Tiers
from storage.upgrade import upgrade
from messages.events import AnyEvent
from messages.timeunits import NS
from messages.timeunits import stamp

__all__ = ["KINDS", "CatalogStore", "GroupFailure", "build_tables", "out_of_space"]

QUARANTINE = "quarantine"  # under the catalog root, beside data/: ParquetDataCatalog never looks there


class GroupFailure(NamedTuple):
    """Events of one kind and instrument that could not be stored, and why."""

    directory: str  # `<kind>/<instrument_id>`, as the keys `write` returns
    events: list[AnyEvent]
    error: BaseException


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TS_COLUMNS}


class CatalogStore:
    """One catalog root (the directory a user passes to `ParquetDataCatalog`).

    Single writer: two processes writing the same directories would race (the mesh has one
    writer, bound to an address that refuses a second one).
    """

    def __init__(self, root: Path | str, durable: bool = True, append_same_day: bool = False) -> None:
        self.root = Path(root)
        # The writer flushes every few seconds: appending into the day's newest file while it is
        # small, and merging the files it then starts in tiers (storage/tiers.py), keeps a few
        # files per instrument per UTC day instead of one per flush, at a flush's cost of its rows.
        self.append_same_day = append_same_day
        self.tiers = Tiers(self.root, durable) if append_same_day else None
        self.data = self.root / "data"
        # fsync files and directories; only tests and benchmarks turn it off.
        self.durable = durable
        self._deferred: Deferred | None = None  # during `write`: the flush's replacements, synced together
        self.recover()
        upgrade(self.root, durable)  # files from before issue 15, once (then `.derivs-layout` says so)

    def directory(self, kind: str, instrument_id: str) -> Path:
        return data_directory(self.root, kind, instrument_id)

    def write(self, events: Iterable[AnyEvent], failed: list[GroupFailure] | None = None) -> dict[str, int]:
        """Store a batch; returns rows added or changed per `<kind>/<instrument_id>` directory.

        A directory whose rows were all stored already maps to 0 (and no file is touched).
        Without `failed` the first error is raised. With it, the events of a kind and instrument
        that cannot be stored are appended there with the error and the others are stored; a
        full disk is raised all the same (nothing else could be written either).
        """
        written: dict[str, int] = {}
        # Every directory's new file first, then a few syncs for all (storage/durability.py):
        # a flush's cost follows its rows, not two fsyncs per directory touched.
        self._deferred = Deferred(self.root) if self.durable else None
        try:
            for (series, instrument_id), by_ts in group_events(events).items():
                key = f"{series}/{instrument_id}"
                try:
                    for (kind, iid), table in group_tables(series, instrument_id, by_ts).items():
                        key = f"{kind}/{iid}"
                        written[key] = self._write_table(kind, iid, table)
                except Exception as exc:
                    exc.add_note(f"writing {self.data / key}")  # pyarrow's errors do not name the file
                    if failed is None or out_of_space(exc):
                        raise
                    failed.append(GroupFailure(key, list(by_ts.values()), exc))
        except BaseException:
            if self._deferred is not None:
                self._deferred.discard()
            raise
        finally:
            deferred, self._deferred = self._deferred, None
        if deferred is not None:
            deferred.commit()  # only now is anything stored: the caller may then drop its WAL
        if self.tiers is not None:
            self.tiers.merge([tuple(key.split("/", 1)) for key, n in written.items() if n])
        return written

    def _write_table(self, kind: str, instrument_id: str, table: pa.Table) -> int:
        directory = self.directory(kind, instrument_id)
        try:
            return self._merge(kind, directory, table)
        except Exception as exc:
            if out_of_space(exc) or not self.set_aside_unreadable(directory, schema_for(kind, instrument_id)):
                raise
        return self._merge(kind, directory, table)  # the unreadable files are out of the way: once more

    def _merge(self, kind: str, directory: Path, table: pa.Table) -> int:
        if kind == CRYPTO_PERPETUAL:
            return self._write_instruments(directory, table)
        return merge_into(directory, table, self.durable, self.append_same_day,
                          (liquidation_row_slot, next_slot) if kind == LIQUIDATION else None, self._deferred)

    def set_aside_unreadable(self, directory: Path, schema: pa.Schema) -> list[Path]:
        """Move the data files of `directory` that cannot be read as `schema` to
        `root/quarantine/<kind>/<instrument>/`; returns where they went."""
        try:
            files = list_files(directory)
        except OSError:
            return []  # no directory to look into (e.g. a name the file system refuses)
        moved = []
        for f in files:
            try:
                read_files([f], schema)
            except Exception as exc:
                if out_of_space(exc):
                    raise
                moved.append(self._set_aside(Path(f.path), exc))
        return moved

    def _set_aside(self, path: Path, exc: BaseException) -> Path:
        aside = self.root / QUARANTINE / path.parent.relative_to(self.data)
        aside.mkdir(parents=True, exist_ok=True)
        target = aside / f"{stamp()}-{path.name}"
        os.replace(path, target)
        if self.durable:
            fsync_dir(path.parent)
            fsync_dir(aside)
        logger.error("unreadable Parquet file {} ({}: {}) moved to {}: ParquetDataCatalog could not load it either; "
                     "its rows are no longer in the catalog (inspect it with pyarrow)", path, type(exc).__name__, exc, target)
        return target

    def _write_instruments(self, directory: Path, table: pa.Table) -> int:
        """Keep a definition only if it differs from the one in effect at its timestamp.

        Collectors re-send definitions on every start with a fresh ts; storing each would grow
        the catalog and make `catalog.instruments()` return duplicates for nothing.
        """
        if self._deferred is None or not self._deferred.holds(directory):
            recover(directory, self.durable)
        history = read_files(list_files(directory), CRYPTO_PERPETUAL_SCHEMA).to_pylist()
        accepted: list[dict[str, Any]] = []
        for row in table.to_pylist():
            earlier = [r for r in history + accepted if r["ts_init"] <= row["ts_init"]]
            current = max(earlier, key=lambda r: r["ts_init"]) if earlier else None
            if current is None or _content(current) != _content(row):
                accepted.append(row)
        if not accepted:
            return 0
        new = pa.Table.from_pylist(accepted, schema=CRYPTO_PERPETUAL_SCHEMA)
        return merge_into(directory, new, self.durable, deferred=self._deferred)

    def files(self, kind: str, instrument_id: str) -> list[Path]:
        """The data files of one directory, oldest first."""
        return [Path(f.path) for f in list_files(self.directory(kind, instrument_id))]

    def last_ts_ns(self, kind: str, instrument_id: str) -> int | None:
        """Newest stored ts_init of one directory (from the file names, no file is opened)."""
        files = list_files(self.directory(kind, instrument_id))
        return max(f.end for f in files) if files else None

    def instrument_ids(self, kind: str) -> list[str]:
        return ids_in(self.root, kind)

    def recover(self) -> int:
        """Finish or roll back writes a crash interrupted, everywhere under data/."""
        return sum(
            recover(self.directory(kind, instrument_id), self.durable)
            for kind in KINDS
            for instrument_id in self.instrument_ids(kind)
        )

    def compact(
        self,
        kind: str | None = None,
        instrument_id: str | None = None,
        before_ns: int | None = None,
    ) -> int:
        """Merge each day's files into one (per directory); returns the number of files removed.

        `before_ns` limits it to files ending before that time (e.g. the start of today, so
        the day being written is left alone).
        """
        removed = 0
        for k in [kind] if kind else KINDS:
            for iid in [instrument_id] if instrument_id else self.instrument_ids(k):
                directory = self.directory(k, iid)
                removed += compact_directory(directory, schema_for(k, iid), before_ns, self.durable)
        return removed


def compact_directory(
    directory: Path, schema: pa.Schema, before_ns: int | None = None, durable: bool = True
) -> int:
    """Merge the files of each UTC day into one file; returns how many files were removed.

    Only files lying wholly within one day (and ending before `before_ns`, if given) are
    grouped; a group's hull stays inside its day, so it meets no file outside the group.
    """
    recover(directory, durable)
    day_ns = 86_400 * NS
    groups: dict[int, list[DataFile]] = {}
    for f in list_files(directory):
        if f.start // day_ns == f.end // day_ns and (before_ns is None or f.end < before_ns):
            groups.setdefault(f.start // day_ns, []).append(f)
    removed = 0
    for files in groups.values():
        if len(files) > 1:
            replace_files(directory, read_files(files, schema), files, durable)
            removed += len(files) - 1
    return removed
