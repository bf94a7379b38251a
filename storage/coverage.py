"""What the catalog holds, from its files alone: ranges, row counts, holes; incremental planning.

    from storage.coverage import coverage, missing_ranges, query

    coverage("catalog")                       # [Coverage(venue, instrument_id, kind, source, ...)]
    missing_ranges("catalog", "oi", "BTCUSDT-PERP.BINANCE", start_ns, end_ns, 300 * 10**9)
    query("catalog", "oi", "BTCUSDT-PERP.BINANCE", start_ns, end_ns)   # list of row dicts

Only pyarrow and the catalog's own file rules (`storage/files.py`) are used: no venue
call, no nautilus import. Kinds: "oi" (`data/custom_open_interest/<ID>/`) and "funding" (live
estimates in `data/custom_funding_rate_info/<ID>/`, settlements in
`data/custom_funding_settlement/<ID>/`), read by `storage.series.read_series`.

Sources: every OI row says where it came from (`source`: "poll" or "history") and funding rows
are "live" or "settled"; coverage reports each source of a series on its own, and `query`
takes `source=` to pick one.

Incremental planning (`missing_ranges`): a range is what the catalog lacks on the grid
(OI) or between settlements (funding). A gap *inside* stored history that is at most
`max_hole_steps` steps long is taken to be the venue's own hole (the venue was asked and had
no row; asking again gives nothing) and is not planned again; longer gaps and everything before
the first / after the last stored row are.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from storage.paths import ids_in
from storage.series import instrument_ids, kind_of, read_series, sources_of
from messages.timeunits import NS

# kind_of, instrument_ids and sources_of are used from here by the CLI (storage.series has them)
__all__ = ["Coverage", "coverage", "holes_in", "ids_in", "instrument_ids", "kind_of", "missing_ranges", "neighbours",
           "query", "read_table", "sources_of", "stored_timestamps"]

MIN_NS = 60 * NS
GRID_NS = 5 * MIN_NS  # the finest OI history period (Binance and Bybit: 5 minutes)
DEFAULT_MAX_HOLE_STEPS = {"oi": 12, "funding": 2}
OI_COLUMNS = ["ts_event", "open_interest", "open_interest_value", "source", "period_s"]
FUNDING_QUERY_COLUMNS = ["ts_event", "rate", "interval_minutes", "rate_annualized", "rate_8h", "next_funding_ns",
                         "predicted_rate", "predicted_rate_annualized", "predicted_rate_8h", "mark_price",
                         "index_price", "settled", "source"]


def read_table(
    catalog_root: Path | str, kind: str, instrument_id: str, start_ns: int | None = None, end_ns: int | None = None,
    source: str | Iterable[str] | None = None,
) -> pa.Table:
    """Stored rows of one instrument in [start_ns, end_ns] (closed; None = open), by ts_init
    (`storage.series.read_series`: funding = live and settled rows, `source` picks)."""
    return read_series(catalog_root, kind, instrument_id, start_ns, end_ns, source)


def query(
    catalog_root: Path | str, kind: str, instrument_id: str, start_ns: int | None = None, end_ns: int | None = None,
    settled: bool | None = None, source: str | Iterable[str] | None = None,
) -> list[dict]:
    """Rows as dicts (no venue call). OI: ts_event, open_interest, open_interest_value, source
    ("poll" | "history" | "archive"), period_s. Funding: ts_event, rate, interval_minutes,
    rate_annualized, rate_8h, next_funding_ns (None if unknown), predicted_rate (and its
    annualized / 8 h figures), mark_price, index_price, settled, source ("live" | "settled").
    `source=` keeps the rows of one source (or several); `settled=True/False` is the same as
    source="settled"/"live". None stands for a figure the venue does not publish."""
    kind = kind_of(kind)
    if settled is not None:
        source = "settled" if settled else "live"
    table = read_table(catalog_root, kind, instrument_id, start_ns, end_ns, source)
    rows = table.select(OI_COLUMNS if kind == "oi" else FUNDING_QUERY_COLUMNS).to_pylist()
    for row in rows:
        row["instrument_id"] = instrument_id
        for k, v in list(row.items()):
            if isinstance(v, float) and v != v:  # NaN = not published
                row[k] = None
        if row.get("next_funding_ns") == 0:
            row["next_funding_ns"] = None
    return rows




# -- coverage report --------------------------------------------------------------------------------


@dataclass
class Coverage:
    venue: str
    instrument_id: str
    kind: str  # "oi" | "funding"
    source: str  # oi: "history" | "poll" | "archive"; funding: "settled" | "live"
    rows: int
    first_ns: int
    last_ns: int
    step_ns: int  # typical spacing (oi history: the period; funding: the most common interval)
    holes: list[tuple[int, int]] = field(default_factory=list)  # (last row before, first row after)

    def to_dict(self) -> dict:
        return asdict(self)


def holes_in(ts: list[int], step_ns: int | list[int], factor: float = 1.5) -> list[tuple[int, int]]:
    """Gaps between consecutive timestamps larger than factor x the expected step.

    `step_ns` may be one step or, per row, the step that leads to it (funding intervals).
    """
    out = []
    for i in range(1, len(ts)):
        step = step_ns[i] if isinstance(step_ns, list) else step_ns
        if ts[i] - ts[i - 1] > factor * step:
            out.append((ts[i - 1], ts[i]))
    return out


def _mode_gap(ts: list[int]) -> int:
    gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
    return statistics.mode(gaps) if gaps else 0


def coverage(catalog_root: Path | str) -> list[Coverage]:
    """Per venue / instrument / kind / source: stored range, row count and holes."""
    out: list[Coverage] = []
    for iid in instrument_ids(catalog_root, "oi"):
        table = read_table(catalog_root, "oi", iid)
        for source in sorted(set(table["source"].to_pylist()), key=("history", "archive", "poll").index):
            ts = table.filter(pc.equal(table["source"], source))["ts_init"].to_pylist()
            if source != "poll":  # buckets of a period
                step = _mode_gap(ts) or GRID_NS
                holes = holes_in(ts, step)
            else:
                step = int(statistics.median([b - a for a, b in zip(ts, ts[1:], strict=False)] or [0]))
                holes = holes_in(ts, max(step, NS), 10.0)
            out.append(Coverage(_venue(iid), iid, "oi", source, len(ts), ts[0], ts[-1], step, holes))
    for iid in instrument_ids(catalog_root, "funding"):
        table = read_table(catalog_root, "funding", iid)
        for settled, source in ((True, "settled"), (False, "live")):
            part = table.filter(pc.equal(table["settled"], settled)) if table.num_rows else table
            if not part.num_rows:
                continue
            ts = part["ts_init"].to_pylist()
            intervals = [m * MIN_NS for m in part["interval_minutes"].to_pylist()]
            step = statistics.mode(intervals)
            holes = holes_in(ts, intervals) if settled else holes_in(ts, max(_mode_gap(ts), NS), 10.0)
            out.append(Coverage(_venue(iid), iid, "funding", source, len(ts), ts[0], ts[-1], step, holes))
    return out


def _venue(instrument_id: str) -> str:
    return instrument_id.rsplit(".", 1)[-1]


# -- incremental planning -----------------------------------------------------------------------------


def stored_timestamps(catalog_root: Path | str, kind: str, instrument_id: str, start_ns: int, end_ns: int,
                      step_ns: int | None = None) -> list[int]:
    """History timestamps stored in [start_ns, end_ns]: OI history rows on the step grid, settled funding."""
    return [t for t, _ in _stored(catalog_root, kind_of(kind), instrument_id, start_ns, end_ns, step_ns)]


def _stored(catalog_root, kind, instrument_id, start_ns, end_ns, step_ns) -> list[tuple[int, int]]:  # noqa: ANN001
    """[(ts, step ns)]: OI history rows on the grid (step = step_ns), settled funding (step = its interval)."""
    table = read_table(catalog_root, kind, instrument_id, start_ns, end_ns,
                       source="settled" if kind == "funding" else ("history", "archive"))
    if not table.num_rows:
        return []
    if kind == "funding":
        return list(zip(table["ts_init"].to_pylist(), [m * MIN_NS for m in table["interval_minutes"].to_pylist()],
                        strict=True))
    step = step_ns or GRID_NS
    return [(t, step) for t in table["ts_init"].to_pylist() if t % step == 0]


def missing_ranges(
    catalog_root: Path | str,
    kind: str,
    instrument_id: str,
    start_ns: int,
    end_ns: int,
    step_ns: int,
    max_hole_steps: int | None = None,
    also_have: Iterable[tuple[int, int]] = (),
) -> list[tuple[int, int]]:
    """Closed [start, end] ns ranges of [start_ns, end_ns] the catalog lacks (see module doc).

    OI: grid points k*step_ns without a stored row, in runs. Funding: `step_ns` is the funding
    interval; before the first / after the last settled row, and gaps longer than
    (max_hole_steps + 1) intervals. Asking again for a stored range gives [].
    `also_have`: (ts ns, interval ns) of rows known to be on their way to the catalog (sent to
    the writer, not flushed yet), counted as stored (OI: the interval is ignored).
    """
    kind = kind_of(kind)
    if end_ns < start_ns or step_ns <= 0:
        return []
    max_hole = DEFAULT_MAX_HOLE_STEPS[kind] if max_hole_steps is None else max_hole_steps
    stored = _stored(catalog_root, kind, instrument_id, start_ns, end_ns, step_ns)
    extra = [(t, iv) for t, iv in also_have if start_ns <= t <= end_ns and (kind != "oi" or t % step_ns == 0)]
    if extra:
        stored = sorted(dict([*stored, *extra]).items())
    if kind == "oi":
        return _grid_missing([t for t, _ in stored], start_ns, end_ns, step_ns, max_hole)
    return _settlement_missing(stored, start_ns, end_ns, step_ns, max_hole)


def neighbours(catalog_root: Path | str, instrument_id: str, start_ns: int, end_ns: int,
               also_have: Iterable[tuple[int, int]] = ()) -> list[int]:
    """Settled funding times next to [start_ns, end_ns]: the last three before it and the first
    after it (stored or in `also_have`), for `fetch_funding_history(known_ns=...)`."""
    ts = read_table(catalog_root, "funding", instrument_id, source="settled")["ts_init"].to_pylist()
    ts = sorted({*ts, *(t for t, _ in also_have)})
    return [t for t in ts if t < start_ns][-3:] + [t for t in ts if t > end_ns][:1]


def _grid_missing(stored: list[int], start_ns: int, end_ns: int, step: int, max_hole: int) -> list[tuple[int, int]]:
    first, last = -(-start_ns // step) * step, end_ns // step * step
    if first > last:
        return []
    have = set(stored)
    runs: list[tuple[int, int]] = []
    run_start = None
    t = first
    while t <= last:
        if t not in have:
            if run_start is None:
                run_start = t
        elif run_start is not None:
            runs.append((run_start, t - step))
            run_start = None
        t += step
    if run_start is not None:
        runs.append((run_start, last))
    lo, hi = (min(have), max(have)) if have else (None, None)

    def interior_hole(a: int, b: int) -> bool:
        return lo is not None and lo < a and b < hi and (b - a) // step + 1 <= max_hole

    return [(a, b) for a, b in runs if not interior_hole(a, b)]


def _settlement_missing(stored: list[tuple[int, int]], start_ns: int, end_ns: int, step: int,
                        max_hole: int) -> list[tuple[int, int]]:
    """Funding: `stored` = [(settlement ns, interval ns of the period it settles)], sorted.

    A row's interval says when the previous settlement was due, and the last row's interval
    when the next one is; `step` is used only when nothing is stored.
    """
    if not stored:
        return [(start_ns, end_ns)]
    out = []
    first, first_iv = stored[0]
    if first - start_ns >= first_iv:
        out.append((start_ns, first - 1))
    for (a, _), (b, iv) in zip(stored, stored[1:], strict=False):
        if b - a > (max_hole + 1) * iv + iv // 2:
            out.append((a + 1, b - 1))
    last, last_iv = stored[-1]
    if end_ns - last >= last_iv:
        out.append((last + 1, end_ns))
    return out
