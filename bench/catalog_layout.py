"""One day of every instrument through `ParquetDataCatalog`: one file per flush vs the compact layout.

    .venv/bin/python bench/catalog_layout.py [--instruments 1200] [--hours 24] [--liquidating 120]

Rows as the mesh stores them at the scale of issue 17: per instrument, open interest and
funding every 60 s (funding is a row in `funding_rate_update` and one in
`custom_funding_rate_info`), and for `--liquidating` instruments a cascade's liquidations
(`--liquidations` per instrument over the period, bunched into the first hour).

- **per flush**: what a writer flushing every 10 s without same-day appending leaves: a file per
  directory per flush that had rows for it (an OI row every 60 s is a file every 60 s);
- **compact**: the same catalog after `derivs compact`'s consolidation in place
  (storage/compaction.py), timed: one file per directory for a closed day (one per month once
  the month is closed).

Both are queried whole (every instrument: OpenInterest, FundingRateInfo, Liquidation) and for
one instrument (`identifiers=[...]`), in the same run, after a warm-up query each.
At full scale (1,200 x 24 h) the per-flush layout is 5.2 million files: the figure is printed,
but measuring it needs that many inodes and hours; `--hours 1` keeps it to ~260k files.
`--keep DIR` writes there and keeps it (a DIR holding a per-flush catalog is measured as it is);
`--compact-only` writes the compact layout directly (a file per directory for the day) and
queries it: the full day at full scale. `--writer` compares the layout the writer leaves in the
open day (storage/tiers.py: liquidations flushed every 10 s through `CatalogStore`, appended
while the file is small, then merged in tiers) with a file per directory for the day (what the
writer left before, re-writing the day's file up to 8 MB, and the compactor's closed day), same
rows, same run. OI and funding are written as one file a day in both: a day of them (~40 KB)
stays under the append bound, so the writer keeps one file for it in either layout.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from nautilus_trader.persistence.catalog import ParquetDataCatalog

from messages.events import FundingRate, Liquidation, OpenInterest
from messages.nautilus import FundingRateInfo as NFundingRateInfo
from messages.nautilus import Liquidation as NLiquidation
from messages.nautilus import OpenInterest as NOpenInterest
from storage import files as cf
from storage.batches import build_tables
from storage.compaction import Cutoffs, Job, directories
from storage.store import CatalogStore

NS = 1_000_000_000
DAY0 = 1_767_225_600 * NS  # 2026-01-01T00:00Z: a closed day of a closed month
FLUSH_NS = 10 * NS


def events(instruments: int, hours: int, liquidating: int, liquidations: int) -> list:
    out = []
    for i in range(instruments):
        iid, sym = f"C{i:04d}USDT-PERP.BINANCE", f"C{i:04d}USDT"
        for m in range(hours * 60):
            t = DAY0 + m * 60 * NS + i * 1_000_000  # instruments polled over the minute
            out.append(OpenInterest(venue="binance", symbol=sym, instrument_id=iid, ts_event=t, ts_recv=t,
                                    open_interest=1000.0 + m, open_interest_value=5e6 + m))
            out.append(FundingRate(venue="binance", symbol=sym, instrument_id=iid, ts_event=t + 5_000_000, ts_recv=t,
                                   rate=0.0001 + m * 1e-8, interval_minutes=480, next_funding_ns=DAY0 + 8 * 3600 * NS,
                                   mark_price=100.0 + m))
        if i < liquidating:
            span = min(hours, 1) * 3600 * NS  # a cascade: the first hour
            for k in range(liquidations):
                t = DAY0 + k * span // liquidations
                out.append(Liquidation(venue="binance", symbol=sym, instrument_id=iid, ts_event=t, ts_recv=t,
                                       side="LONG" if k % 3 else "SHORT", quantity=1.0 + k % 7, price=100.0 + k % 11,
                                       value=(1.0 + k % 7) * (100.0 + k % 11)))
    return out


def write_per_flush(root: Path, evs: list, flush_ns: int = FLUSH_NS) -> int:
    """A file per (directory, flush window) that holds rows."""
    windows: dict[int, list] = {}
    for e in evs:
        windows.setdefault(e.ts_event // flush_ns, []).append(e)
    files = 0
    for window in sorted(windows):
        for (kind, iid), table in build_tables(windows[window]).items():
            directory = root / "data" / kind / iid
            directory.mkdir(parents=True, exist_ok=True)
            cf.replace_files(directory, table, durable=False)
            files += 1
    return files


def write_as_writer(root: Path, evs: list) -> None:
    """The writer's open day: liquidations through its store, a flush per 10 s window; the rest a file a day."""
    write_per_flush(root, [e for e in evs if not isinstance(e, Liquidation)], 86_400 * NS)
    store = CatalogStore(root, durable=False, append_same_day=True)
    windows: dict[int, list] = {}
    for e in evs:
        if isinstance(e, Liquidation):
            windows.setdefault(e.ts_event // FLUSH_NS, []).append(e)
    for window in sorted(windows):
        store.write(windows[window])


def compact(root: Path) -> float:
    started = time.monotonic()
    cut = Cutoffs.at(time.time_ns())
    for kind, iid in directories(root):
        job = Job(root, kind, iid, cut, durable=False)
        for _ in job.steps() if job else ():
            pass
    return time.monotonic() - started


def layout(root: Path) -> tuple[int, int]:
    paths = list((root / "data").rglob("*.parquet"))
    return len(paths), sum(p.stat().st_size for p in paths)


def query_s(root: Path, one: str | None) -> tuple[float, int]:
    catalog = ParquetDataCatalog(str(root))
    ids = [one] if one else None
    started = time.monotonic()
    n = sum(len(catalog.query(cls, identifiers=ids)) for cls in (NOpenInterest, NFundingRateInfo, NLiquidation))
    return time.monotonic() - started, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instruments", type=int, default=1200)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--liquidating", type=int, default=120, help="instruments with liquidations")
    parser.add_argument("--liquidations", type=int, default=3000, help="per liquidating instrument")
    parser.add_argument("--keep", help="catalog directory to use and keep (an existing per-flush one is measured as it is)")
    parser.add_argument("--compact-only", action="store_true",
                        help="only the compact layout (written directly, a file per directory): for the full day")
    parser.add_argument("--writer", action="store_true",
                        help="the writer's open-day layout (appends + tiers) vs a file per directory for the day")
    parser.add_argument("--rounds", type=int, default=3, help="with --writer: queries of each layout, interleaved")
    args = parser.parse_args()
    full_scale = args.instruments * 3 * (args.hours * 60)
    print(f"{args.instruments} instruments x {args.hours} h: OI and funding every 60 s, "
          f"{args.liquidating} x {args.liquidations} liquidations")
    print(f"per-flush layout of OI/funding alone: {full_scale:,} files ({full_scale / args.hours * 24:,.0f} a day)")
    evs = events(args.instruments, args.hours, args.liquidating, args.liquidations)
    one = "C0000USDT-PERP.BINANCE"
    with tempfile.TemporaryDirectory(prefix="layout-") as tmp:
        root = Path(args.keep or tmp)
        if args.compact_only:
            write_per_flush(root, evs, 86_400 * NS)
            report("compact", root, one)
            return
        if args.writer:
            if not (root / "writer" / "data").exists():  # a kept run is queried as it is
                started = time.monotonic()
                write_as_writer(root / "writer", evs)
                print(f"wrote the writer's layout in {time.monotonic() - started:.0f} s")
                write_per_flush(root / "day", evs, 86_400 * NS)
            compare(root, one, args.rounds)
            return
        if not (root / "data").exists():
            started = time.monotonic()
            write_per_flush(root, evs)
            print(f"wrote the per-flush layout in {time.monotonic() - started:.0f} s")
        f0, b0, a0, o0 = report("per flush", root, one)
        compact_s = compact(root)  # in place: the same rows, consolidated
        f1, b1, a1, o1 = report("compact", root, one)
        print(f"compaction took {compact_s:.1f} s; per flush / compact: files {f0 / f1:.0f}x, bytes {b0 / b1:.1f}x, "
              f"query all {a0 / a1:.1f}x, query one {o0 / o1:.1f}x")


def compare(root: Path, one: str, rounds: int) -> None:
    """`root/writer` vs `root/day`: queries interleaved (the machine's load hits both alike), medians."""
    times: dict[str, list] = {"writer": [], "day": []}
    for round_ in range(rounds + 1):
        for name in times:
            (all_s, rows), (one_s, one_rows) = query_s(root / name, None), query_s(root / name, one)
            if round_:  # the first is a warm-up: page cache, Nautilus's first query
                times[name].append((all_s, one_s))
    medians = {}
    for name, runs in times.items():
        files, size = layout(root / name)
        all_s, one_s = (statistics.median(x) for x in zip(*runs, strict=True))
        medians[name] = (files, all_s, one_s)
        print(f"{name:>10}: {files:>9,} files {size / 1e6:8.1f} MB | all instruments {all_s:7.2f} s ({rows:,} rows) | "
              f"one instrument {one_s:6.3f} s ({one_rows:,} rows); median of {rounds}")
    (f0, a0, o0), (f1, a1, o1) = medians["writer"], medians["day"]
    print(f"writer's layout / a file per day: files {f0 / f1:.2f}x, query all {a0 / a1:.2f}x, query one {o0 / o1:.2f}x")


def report(name: str, root: Path, one: str) -> tuple[int, int, float, float]:
    query_s(root, one)  # warm-up (imports, page cache)
    files, size = layout(root)
    (all_s, all_rows), (one_s, one_rows) = query_s(root, None), query_s(root, one)
    print(f"{name:>10}: {files:>9,} files {size / 1e6:8.1f} MB | all instruments {all_s:7.2f} s "
          f"({all_rows:,} rows) | one instrument {one_s:6.3f} s ({one_rows:,} rows)")
    return files, size, all_s, one_s


if __name__ == "__main__":
    main()
