"""`derivs history oi`'s archive part: what a venue's REST no longer serves, from its public archive
(Binance: data.binance.vision, `venues/binance/archive.py`), stitched to the REST part.

    rest_start_ns = await archive_oi(ad, market, period, start_ns, end_ns, url, catalog, sink, summary)

The seam: REST serves 5-minute OI from its retention floor (`venues.history.oi_history_floor_ms`,
now - 30 days) on; the archive serves whole past days. The archive part runs to `floor + 1 h`
(a margin: the floor moves with the clock while the archive downloads), and REST starts right
after the archive's last bucket, so the series has one row per bucket, none twice and none
missing at the seam. Were the archive's day of the seam missing or unusable, REST starts at its
own floor instead. Archive and REST timestamps mean the same instant (module doc of
`venues/binance/archive.py`); coarser periods take the 5-minute snapshots on their grid (OI is a
level, not a sum over the bucket).

Rows are stored as they arrive, a month of files at a time (`sink.store`): an interrupted run
keeps what it stored, and a rerun asks the archive only for what the catalog lacks
(`storage.coverage.missing_ranges`, which counts "archive" rows as stored history). Stored rows
say `source="archive"`, `period_s` the bucket; REST's say "history".

Files before the symbol's first archive file (404s up to the first file found) are not gaps: the
archive starts later (BTCUSDT: 2020-09-01), and one note says so. After it, a file the archive
does not have (404) or cannot give (corrupt zip, checksum mismatch, bad
header): nothing from it is stored, its span is recorded as a `Gap` of stream "open_interest"
(reason: the file and what was wrong; `storage.gaps`, `derivs coverage`), the run carries on;
unusable files also make the run's error (exit 1), named file by file. A file that could not be
downloaded (connection, timeout, HTTP 5xx) is no gap of the archive: nothing is recorded for it,
the run's error says so, and a rerun asks again.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import Any

import click

from messages.events import Gap, Instrument, OpenInterest, checked
from messages.timeunits import MS
from messages.timeunits import utc as _iso
from storage.coverage import missing_ranges
from venues.base import Market, VenueAdapter
from venues.history import PERIODS_MS, oi_history_floor_ms

SEAM_MARGIN_MS = 3_600_000
DAY_MS = 86_400_000


def _first(reasons: list[str], n: int = 5) -> str:
    """The first few reasons, and how many more (a whole run can fail the same way)."""
    return "; ".join(reasons[:n]) + (f"; ... and {len(reasons) - n} more" if len(reasons) > n else "")


def _seam_ms(floor_ms: int, step_ms: int) -> int:
    """The first REST bucket: the floor plus at least the margin, on the period's grid."""
    return floor_ms + -(-SEAM_MARGIN_MS // step_ms) * step_ms


async def archive_oi(ad: VenueAdapter, market: Market, period: str, start_ns: int, end_ns: int, url: str | None,
                     catalog: str, sink: Any, summary: Any, show_progress: bool = False) -> int:
    """Store the archive's OI of [start_ns, end_ns] that REST no longer serves; returns where the
    REST part starts (past end_ns: nothing left for REST). `url`: the emulator (sandbox), whose
    venue port serves the archive too; None: the real archive."""
    archive = ad.oi_retention_archive
    step_ms = PERIODS_MS[period]
    floor_ms = oi_history_floor_ms(ad, period)
    if archive is None or floor_ms is None or start_ns >= floor_ms * MS:
        return start_ns
    seam_ms = _seam_ms(floor_ms, step_ms)
    arch_end_ns = min(end_ns, seam_ms * MS - 1)
    base = url or archive.ARCHIVE_URL
    run = _ArchiveRun(ad, market, step_ms, sink, summary)
    todo = missing_ranges(catalog, "oi", run.iid, start_ns, arch_end_ns, step_ms * MS)
    files = sum((b - a) // MS // DAY_MS + 1 for a, b in todo)  # one a day
    with click.progressbar(length=max(1, files), label=f"{ad.venue} {run.iid} oi archive files", file=sys.stderr,
                           show_eta=True) if show_progress else nullcontext() as bar:
        for a, b in todo:
            run.started = a > start_ns  # rows before this range are stored: a 404 here is a gap
            async for chunk in archive.metrics_chunks(market["id"], a // MS, b // MS, base):
                await run.store(chunk)
                if bar is not None:
                    bar.update(chunk.files)
    if run.leading:
        summary.notes.append(f"archive: no {market['id']} file for {_iso(run.leading[0].start_ms * MS)}.."
                             f"{_iso(run.leading[-1].end_ms * MS)} ({len(run.leading)} files not published, 404)")
    problems = []
    if run.broken:
        problems.append(f"{len(run.broken)} archive file(s) unusable, nothing stored from them, recorded as gaps "
                        f"(a rerun asks again): {_first(run.broken)}")
    if run.unreachable:
        problems.append(f"{len(run.unreachable)} archive file(s) could not be downloaded, nothing recorded for them "
                        f"(a rerun asks again): {_first(run.unreachable)}")
    if problems:
        summary.error = "; ".join(problems)
    summary.notes.append(f"{ad.venue} keeps {ad.oi_history_retention_days} days of open-interest history: "
                         f"{_iso(start_ns)}..{_iso(arch_end_ns)} from its public archive ({base})")
    seam_missing = any(h[0] <= floor_ms * MS <= h[1] for h in run.skipped_spans)
    return (floor_ms if seam_missing else seam_ms) * MS


class _ArchiveRun:
    """One archive download: each chunk's rows and gaps stored as they come, what went wrong kept."""

    def __init__(self, ad: VenueAdapter, market: Market, step_ms: int, sink: Any, summary: Any) -> None:
        self.ad, self.market, self.step_ms, self.sink, self.summary = ad, market, step_ms, sink, summary
        self.iid = ad.instrument_id(market)
        definition = ad.instrument_event(market, time.time_ns())  # stored with the first rows (a Malformed one is left out)
        self.defined = [definition] if isinstance(definition, Instrument) else []
        self.started = False  # a file with rows seen (or rows stored before the range)
        self.leading: list = []  # 404s before the symbol's first archive file: the archive starts later, not a gap
        self.broken: list[str] = []  # unusable files (gaps)
        self.unreachable: list[str] = []  # files not downloaded this time (not gaps)
        self.skipped_spans: list[tuple[int, int]] = []

    def gaps_of(self, chunk: Any) -> list:
        """The chunk's holes that are gaps (404s before the archive's first file are not)."""
        first_ms = chunk.table["ts_ms"][0].as_py() if chunk.table.num_rows else None
        holes = [h for h in chunk.holes
                 if self.started or not h.missing or (first_ms is not None and h.start_ms > first_ms)]
        self.leading += [h for h in chunk.holes if h not in holes]
        self.started |= first_ms is not None
        if self.leading and self.started:
            self.summary.notes.append(
                f"archive: no {self.market['id']} file before {_iso(self.leading[-1].end_ms * MS + MS)}: "
                f"{_iso(self.leading[0].start_ms * MS)}..{_iso(self.leading[-1].end_ms * MS)} not available "
                f"({len(self.leading)} files not published, 404)")
            self.leading = []
        return holes

    async def store(self, chunk: Any) -> None:
        ad, market, iid, summary = self.ad, self.market, self.iid, self.summary
        holes = self.gaps_of(chunk)
        self.skipped_spans += [(h.start_ms * MS, h.end_ms * MS) for h in holes]
        self.unreachable += [h.reason for h in holes if h.kind == "unreachable"]
        holes = [h for h in holes if h.kind != "unreachable"]
        table = chunk.table
        ts, oi, value = (table[c].to_pylist() for c in ("ts_ms", "sum_open_interest", "sum_open_interest_value"))
        ts_recv = time.time_ns()
        events = [
            checked(OpenInterest, venue=ad.venue, symbol=market["symbol"], instrument_id=iid, ts_event=t * MS,
                    ts_recv=ts_recv, open_interest=o, open_interest_value=v, source="archive",
                    period_s=self.step_ms // 1000)
            for t, o, v in zip(ts, oi, value, strict=True) if t % self.step_ms == 0
        ]
        gaps = [checked(Gap, venue=ad.venue, symbol=market["symbol"], instrument_id=iid, ts_event=h.start_ms * MS,
                        ts_recv=ts_recv, stream="open_interest", end_ns=h.end_ms * MS,
                        reason=f"archive: {h.reason}"[:500]) for h in holes]
        for h in holes:
            if h.missing:
                summary.notes.append(f"archive: {h.name} not published (404): "
                                     f"{_iso(h.start_ms * MS)}..{_iso(h.end_ms * MS)} recorded as a gap")
            else:
                self.broken.append(h.reason)
        summary.venue_holes += [(h.start_ms * MS, h.end_ms * MS) for h in holes]
        if events:
            stored = await self.sink.store([*self.defined, *events], f"{ad.venue} {iid} oi (archive)")
            self.defined = []
            summary.count_stored(events, stored)
        if gaps:
            await self.sink.store(gaps, f"{ad.venue} {iid} oi (archive gaps)")
        summary.fetched += len(events)
        summary.pages += chunk.files
