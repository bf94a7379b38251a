"""Recorded gaps and liquidation coverage, from the catalog's files alone (pyarrow, no nautilus).

    from storage.gaps import gaps, liquidation_coverage
    gaps("catalog")                                         # every recorded gap, oldest first
    gaps("catalog", venue="BYBIT", stream="liquidations", start_ns=a, end_ns=b)
    liquidation_coverage("catalog")                         # rows for `derivs coverage`

A gap (`data/custom_gap/<ID>/`, `messages.nautilus.Gap`) is a window [start_ns, end_ns] in
which a stream of one instrument may be missing data: a lost connection, a collector that was
not running, an outbox overflow (`reason`). Liquidations are a stream of events, not a series
on a grid, so the catalog cannot tell a quiet minute from a missed one: the recorded gaps are
the only holes there are, and liquidation coverage reports them as its holes.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.compute as pc

from storage.files import list_files, read_files
from storage.paths import data_directory, ids_in
from storage.schema import GAP, LIQUIDATION, schema_for
from storage.coverage import Coverage

STREAMS = ("liquidations", "open_interest", "funding", "instruments")


@dataclass(frozen=True)
class GapRow:
    venue: str
    instrument_id: str
    stream: str
    start_ns: int
    end_ns: int
    reason: str

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def to_dict(self) -> dict:
        return asdict(self)


def gaps(catalog_root: Path | str, *, venue: str | None = None, instrument_id: str | None = None,
         stream: str | None = None, start_ns: int | None = None, end_ns: int | None = None) -> list[GapRow]:
    """Recorded gaps, filtered; a gap is kept if its window meets [start_ns, end_ns]."""
    if stream is not None and stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; expected one of: {', '.join(STREAMS)}")
    lo, hi = start_ns if start_ns is not None else 0, end_ns if end_ns is not None else 2**64 - 1
    out: list[GapRow] = []
    for iid in ids_in(catalog_root, GAP):
        if instrument_id is not None and iid != instrument_id:
            continue
        if venue is not None and iid.rsplit(".", 1)[-1] != venue.upper():
            continue
        # a file's name bounds the gaps' *starts*; a gap starting before `lo` may still reach into it
        files = [f for f in list_files(data_directory(catalog_root, GAP, iid)) if f.start <= hi]
        table = read_files(files, schema_for(GAP, iid))
        if stream is not None and table.num_rows:
            table = table.filter(pc.equal(table["stream"], stream))
        for row in table.select(["stream", "ts_event", "end_ns", "reason"]).to_pylist():
            if row["ts_event"] <= hi and row["end_ns"] >= lo:
                out.append(GapRow(iid.rsplit(".", 1)[-1], iid, row["stream"], row["ts_event"], row["end_ns"], row["reason"]))
    return sorted(out, key=lambda g: (g.start_ns, g.instrument_id, g.stream))


def liquidation_coverage(catalog_root: Path | str) -> list[Coverage]:
    """One row per instrument with liquidations or liquidation gaps: stored range, rows, median
    spacing, and the recorded gaps as holes (kind "liquidations", source "stream")."""
    by_id: dict[str, list[tuple[int, int]]] = {}
    for g in gaps(catalog_root, stream="liquidations"):
        by_id.setdefault(g.instrument_id, []).append((g.start_ns, g.end_ns))
    out: list[Coverage] = []
    for iid in sorted(set(ids_in(catalog_root, LIQUIDATION)) | set(by_id)):
        files = list_files(data_directory(catalog_root, LIQUIDATION, iid))
        ts = read_files(files, schema_for(LIQUIDATION, iid))["ts_event"].to_pylist()
        holes = by_id.get(iid, [])
        # the stored range; an instrument with gaps but no liquidation yet spans its gaps
        first, last = (ts[0], ts[-1]) if ts else (min(a for a, _ in holes), max(b for _, b in holes))
        step = int(statistics.median([b - a for a, b in zip(ts, ts[1:], strict=False)] or [0]))
        out.append(Coverage(iid.rsplit(".", 1)[-1], iid, "liquidations", "stream", len(ts), first, last, step, holes))
    return out


def gap_lines(catalog_root: Path | str, iso: Callable[[int], str], limit: int = 20) -> list[str]:
    """The recorded gaps as text for `derivs coverage` (newest `limit`; the count says if more)."""
    rows = gaps(catalog_root)
    if not rows:
        return []
    head = f"recorded gaps: {len(rows)}" + (f" (newest {limit} shown)" if len(rows) > limit else "")
    return ["", head] + [f"  {g.instrument_id}  {g.stream}  {iso(g.start_ns)} .. {iso(g.end_ns)}  ({g.seconds:.1f} s)  {g.reason}"
                         for g in rows[-limit:]]
