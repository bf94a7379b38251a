"""`derivs compact`: consolidate the closed periods of an existing catalog now (storage/compaction.py).

    derivs compact                      # ./topology.yaml's catalog (else ./catalog)
    derivs compact --catalog C --dry-run   # what would change, nothing written

A running mesh's writer does this itself, a little after each flush; this command is for a
catalog written before, or by other tools (Nautilus's `write_data`, history downloads). It holds
the catalog's writer lock while it works, so it refuses to run beside a mesh or a download.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import click

from cli.catalogargs import catalog_options, existing_catalog
from storage.compaction import Cutoffs, Job, Result, directories, plan
from storage.dirswap import SwapUnsupported, clear_stage
from storage.lock import CatalogBusy, CatalogLock, describe
from storage.paths import data_directory
from storage.store import CatalogStore

# Tests stop a real `derivs compact` at its n-th step (then `kill -9` it): the step's label is
# printed to stderr and the process waits there forever.
PAUSE_ENV = "DERIVS_COMPACTION_PAUSE_AT"


def _pause_at() -> int | None:
    value = os.environ.get(PAUSE_ENV)
    return int(value) if value else None


@click.command("compact")
@catalog_options
@click.option("--dry-run", is_flag=True, help="Only say which directories would be consolidated.")
def compact_cmd(catalog: str | None, topology: str | None, dry_run: bool) -> None:
    """Consolidate closed periods: one file per closed month (size-bounded), one per closed day of this month."""
    root = Path(existing_catalog(catalog, topology))
    if dry_run:  # reads names and footers only: fine beside a running mesh
        _report(True, *_compact(root, dry_run))
        return
    try:
        with CatalogLock(root, {"kind": "cli", "command": "derivs compact"}) as lock:
            lock.acquire(timeout_s=5.0)
            totals = _compact(root, dry_run)
    except CatalogBusy as exc:
        raise click.ClickException(f"{root} is being written by {describe(exc.holder)}: a running mesh's writer "
                                   f"compacts closed periods itself; stop it (or wait for the download) to run this") from None
    _report(False, *totals)


def _report(dry_run: bool, done: int, files_before: int, files_after: int, bytes_before: int, bytes_after: int,
            seconds: float) -> None:
    if dry_run:
        click.echo(f"would consolidate {done} directories ({files_before} files); nothing written")
        return
    click.echo(f"consolidated {done} directories: {files_before} files -> {files_after}, "
               f"{bytes_before / 1e6:.1f} MB -> {bytes_after / 1e6:.1f} MB in {seconds:.1f} s")


def _compact(root: Path, dry_run: bool) -> tuple[int, int, int, int, int, float]:
    started = time.monotonic()
    if not dry_run:
        CatalogStore(root)  # finishes a write a crash interrupted
        clear_stage(root)  # and what an interrupted compaction left beside the catalog
    cut = Cutoffs.at(time.time_ns())
    pause, steps = _pause_at(), 0
    done = files_before = files_after = bytes_before = bytes_after = failed = 0
    todo = directories(root)
    for n, (kind, iid) in enumerate(todo, 1):
        if dry_run:
            groups = plan(data_directory(root, kind, iid), cut)
            if groups:
                files = sum(len(g) for g in groups)
                click.echo(f"[{n}/{len(todo)}] {kind}/{iid}: {files} files in {len(groups)} runs to consolidate")
                done, files_before = done + 1, files_before + files
            continue
        job = Job(root, kind, iid, cut)
        if not job:
            continue
        try:
            for label in job.steps():
                steps += 1
                if steps == pause:
                    click.echo(f"PAUSED {steps} {label}", err=True)
                    sys.stderr.flush()
                    threading.Event().wait()
        except SwapUnsupported as exc:
            raise click.ClickException(f"{exc}: compaction needs an atomic directory exchange (Linux, macOS "
                                       f"on ext4, xfs, btrfs, tmpfs, APFS...); {kind}/{iid} was left as it was") from None
        except Exception as exc:  # an unreadable file, a full disk: that directory stays as it was
            click.echo(f"[{n}/{len(todo)}] {kind}/{iid}: left as it was: {type(exc).__name__}: {exc}", err=True)
            failed += 1
            continue
        result: Result = job.result
        if result.aborted:
            click.echo(f"[{n}/{len(todo)}] {kind}/{iid}: left as it was ({result.aborted})", err=True)
            continue
        click.echo(f"[{n}/{len(todo)}] {kind}/{iid}: {result.files_before} files -> {result.files_after} "
                   f"({result.rows} rows)")
        done += 1
        files_before, files_after = files_before + result.files_before, files_after + result.files_after
        bytes_before, bytes_after = bytes_before + result.bytes_before, bytes_after + result.bytes_after
    if failed:
        raise click.ClickException(f"{failed} directories could not be consolidated (see above); they are intact")
    return done, files_before, files_after, bytes_before, bytes_after, time.monotonic() - started
