"""The catalog writer's storage layer: events in, NautilusTrader-readable Parquet out.

`CatalogStore(root).write(events)` turns a batch of `messages.events` structs into one Parquet
file per (kind, instrument) under `root/data/`, in the layout `ParquetDataCatalog` 1.231 reads
as is (`actors/catalog_schema.py` has the schemas, `actors/catalog_files.py` the file rules and
the crash-safety argument). It is idempotent: the natural key of a row is (instrument_id,
ts_init), a re-sent or re-fetched event adds nothing, and a changed one replaces its row.

Only pyarrow, msgspec and the stdlib are imported: the writer never loads nautilus_trader.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from actors.catalog_files import (
    compact_directory,
    list_files,
    merge_into,
    read_files,
    recover,
)
from actors.catalog_schema import (
    CRYPTO_PERPETUAL,
    CRYPTO_PERPETUAL_SCHEMA,
    KINDS,
    LIQUIDATION,
    TS_COLUMNS,
    build_tables,
    liquidation_row_slot,
    next_slot,
    schema_for,
)
from messages.events import AnyEvent

__all__ = ["KINDS", "CatalogStore", "build_tables"]


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TS_COLUMNS}


class CatalogStore:
    """One catalog root (the directory a user passes to `ParquetDataCatalog`).

    Single writer: two processes writing the same directories would race (the mesh has one
    writer, bound to an address that refuses a second one).
    """

    def __init__(self, root: Path | str, durable: bool = True, append_same_day: bool = False) -> None:
        self.root = Path(root)
        # The writer flushes every few seconds: appending into the day's newest file keeps one
        # file per instrument per UTC day (8 MB files on a busy day) instead of one per flush.
        self.append_same_day = append_same_day
        self.data = self.root / "data"
        # fsync files and directories; only tests and benchmarks turn it off.
        self.durable = durable
        self.recover()

    def directory(self, kind: str, instrument_id: str) -> Path:
        # Nautilus's `urisafe_identifier`: an id is used as a directory name without '/'.
        return self.data / kind / instrument_id.replace("/", "")

    def write(self, events: Iterable[AnyEvent]) -> dict[str, int]:
        """Store a batch; returns rows added or changed per `<kind>/<instrument_id>` directory.

        A directory whose rows were all stored already maps to 0 (and no file is touched).
        """
        written: dict[str, int] = {}
        for (kind, instrument_id), table in build_tables(events).items():
            directory = self.directory(kind, instrument_id)
            if kind == CRYPTO_PERPETUAL:
                rows = self._write_instruments(directory, table)
            else:
                rows = merge_into(directory, table, self.durable, self.append_same_day,
                                  (liquidation_row_slot, next_slot) if kind == LIQUIDATION else None)
            written[f"{kind}/{instrument_id}"] = rows
        return written

    def _write_instruments(self, directory: Path, table: pa.Table) -> int:
        """Keep a definition only if it differs from the one in effect at its timestamp.

        Collectors re-send definitions on every start with a fresh ts; storing each would grow
        the catalog and make `catalog.instruments()` return duplicates for nothing.
        """
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
        return merge_into(directory, new, self.durable)

    def files(self, kind: str, instrument_id: str) -> list[Path]:
        """The data files of one directory, oldest first."""
        return [Path(f.path) for f in list_files(self.directory(kind, instrument_id))]

    def last_ts_ns(self, kind: str, instrument_id: str) -> int | None:
        """Newest stored ts_init of one directory (from the file names, no file is opened)."""
        files = list_files(self.directory(kind, instrument_id))
        return max(f.end for f in files) if files else None

    def instrument_ids(self, kind: str) -> list[str]:
        base = self.data / kind
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

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
