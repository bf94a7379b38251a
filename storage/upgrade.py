"""Bring a catalog written before issue 15 to the current layout, once, when a writer opens it.

    python -m storage.upgrade CATALOG      # or just start the mesh / run `derivs history` on it

What changed, and what is done to an older file (found by its columns, so a file is upgraded at
most once and a current file is never touched):

- `custom_open_interest`: rows gained `source` and `period_s`. Older rows get them as
  `storage.legacy.conform` derives them (the timestamp says poll or history; a history row's
  period was not recorded: -1).
- `custom_funding_rate_info`: rows gained the annualized and 8-hour rates, derived exactly.
  Settled rows (`settled=True`) move to `custom_funding_settlement` and leave both
  `custom_funding_rate_info` and `funding_rate_update` (the same rows for Nautilus), which hold
  live estimates only from now on.

When every file is current, `<catalog>/.derivs-layout` records it, and later opens skip the
scan (reading every file's footer costs about 0.7 ms a file: 2 s for 3,000 files). A file that
could not be read is left to the writer's set-aside and the scan runs again at the next open.

Crash safety: the settlements are stored (idempotently) before any row is removed, the
`funding_rate_update` files are rewritten before the `custom_funding_rate_info` file whose
columns mark it as done, and a file is replaced by writing `.<name>.tmp` and renaming it over
the old name (atomic), then renaming it to its rows' new first/last time if rows were removed
(atomic too). A crash anywhere leaves either the old file or the new one, never both, and the
next run finishes the job (re-storing settlements adds nothing).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from loguru import logger

from storage.files import ROWS_PER_GROUP, TMP_SUFFIX, DataFile, file_name, fsync_dir, list_files, merge_into, overlapping
from storage.schema import (
    FUNDING_RATE_INFO,
    FUNDING_RATE_UPDATE,
    FUNDING_SETTLEMENT,
    FUNDING_SETTLEMENT_SCHEMA,
    OPEN_INTEREST,
    SCHEMAS,
    schema_for,
)
from storage.legacy import conform, lacks_columns


LAYOUT_FILE = ".derivs-layout"  # not *.parquet and not under data/: ParquetDataCatalog never looks at it
LAYOUT = 2  # 1: before issue 15


def layout(root: Path | str) -> int:
    """The layout version recorded in the catalog (1 if none is)."""
    try:
        return int(json.loads((Path(root) / LAYOUT_FILE).read_text())["layout"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def upgrade(root: Path | str, durable: bool = True) -> dict[str, int]:
    """Upgrade every older file under `root/data/` (see the module doc); returns counts of
    files rewritten and settlements moved. The caller is the catalog's only writer."""
    data = Path(root) / "data"
    done = {"files": 0, "settlements": 0, "skipped": 0}
    if layout(root) >= LAYOUT:
        return done
    for kind in (OPEN_INTEREST, FUNDING_RATE_INFO):
        base = data / kind
        for directory in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            for f in list_files(directory):
                try:
                    if not lacks_columns(pq.read_schema(f.path).names, SCHEMAS[kind]):
                        continue
                    table = conform(pq.read_table(f.path), SCHEMAS[kind])
                except (OSError, ValueError, pa.ArrowException) as exc:
                    # not a file of ours: the writer sets it aside when it next writes here (store.py)
                    logger.warning("catalog upgrade: {} skipped ({}: {})", f.path, type(exc).__name__, exc)
                    done["skipped"] += 1
                    continue
                if kind == FUNDING_RATE_INFO:
                    settled = table.filter(pc.equal(table["settled"], True))
                    if settled.num_rows:
                        _move_settlements(data, directory.name, settled, durable)
                        done["settlements"] += settled.num_rows
                    table = table.filter(pc.equal(table["settled"], False))
                _rewrite(f, table, durable)
                done["files"] += 1
    if not done["skipped"] and Path(root).is_dir():
        _write_layout(Path(root), durable)
    if done["files"]:
        logger.info("catalog {}: {} files from before issue 15 upgraded ({} settled funding rows moved to {})",
                    root, done["files"], done["settlements"], FUNDING_SETTLEMENT)
    return done


def _write_layout(root: Path, durable: bool) -> None:
    tmp = root / f".{LAYOUT_FILE}{TMP_SUFFIX}"
    tmp.write_text(json.dumps({"layout": LAYOUT}) + "\n")
    os.replace(tmp, root / LAYOUT_FILE)
    if durable:
        fsync_dir(root)


def _move_settlements(data: Path, instrument_id: str, settled: pa.Table, durable: bool) -> None:
    """Store settled rows as settlements, then drop them from `funding_rate_update`."""
    n = settled.num_rows
    rows = pa.table({
        **{name: settled[name] for name in ("instrument_id", "rate", "interval_minutes", "rate_annualized", "rate_8h",
                                            "mark_price")},
        "type": pa.array(["FundingSettlement"] * n, pa.string()),
        "ts_event": settled["ts_event"],
        "ts_init": settled["ts_init"],
    }).cast(FUNDING_SETTLEMENT_SCHEMA)
    merge_into(data / FUNDING_SETTLEMENT / instrument_id, rows, durable)
    updates = data / FUNDING_RATE_UPDATE / instrument_id
    first, last = settled["ts_init"][0].as_py(), settled["ts_init"][-1].as_py()
    keys = settled["ts_init"].combine_chunks()
    for f in overlapping(list_files(updates), first, last):
        table = conform(pq.read_table(f.path), schema_for(FUNDING_RATE_UPDATE, instrument_id))
        kept = table.filter(pc.invert(pc.is_in(table["ts_init"], value_set=keys)))
        if kept.num_rows != table.num_rows:
            _rewrite(f, kept, durable)


def _rewrite(f: DataFile, table: pa.Table, durable: bool) -> None:
    """Replace file `f` by `table` (its rows, some perhaps removed), atomically at each step."""
    directory, name = os.path.split(f.path)
    if table.num_rows == 0:
        os.unlink(f.path)
    else:
        tmp = os.path.join(directory, f".{name}{TMP_SUFFIX}")  # a stray one is deleted by `files.recover`
        pq.write_table(table, tmp, row_group_size=ROWS_PER_GROUP)
        if durable:
            with open(tmp, "rb+") as out:
                os.fsync(out.fileno())
        os.replace(tmp, f.path)
        ts = table["ts_init"]
        narrower = file_name(ts[0].as_py(), ts[-1].as_py())
        if narrower != name:  # rows were removed at an end: the name says the rows' interval again
            os.replace(f.path, os.path.join(directory, narrower))
    if durable:
        fsync_dir(Path(directory))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not (Path(argv[1]) / "data").is_dir():
        print(f"usage: python -m storage.upgrade CATALOG   (a directory with data/ in it; got {argv[1:]})", file=sys.stderr)
        return 2
    from storage.lock import CatalogBusy, CatalogLock

    try:
        with CatalogLock(argv[1], {"kind": "cli", "command": "storage.upgrade"}) as lock:
            lock.acquire(5.0)
            done = upgrade(argv[1])
    except CatalogBusy as exc:
        print(f"error: {exc}: a running writer has upgraded the catalog already", file=sys.stderr)
        return 1
    print(f"{done['files']} files upgraded, {done['settlements']} settled funding rows moved to {FUNDING_SETTLEMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
