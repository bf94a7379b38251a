"""Writer memory over many flushes: RSS of the storage path (CatalogStore.write appending into
the day's file, as the writer does), after each flush and at its peak during the flush.

    .venv/bin/python bench/writer_memory.py [--flushes 300] [--rows-per-flush 20000]

Three variants, measured in the same run, each in its own process (one's allocator state must
not colour another's figures):

- `merge, pages kept`: each flush reads the whole day's file (up to 8 MB), merges the new rows
  in and re-writes it; pyarrow's allocator keeps the pages it used (the writer until 436fbc0);
- `merge, pages released`: the same with `release_unused()` after each flush (until the append
  was streamed);
- `streamed append` (the writer now): the day's file is copied into the new one a row group
  at a time (actors/catalog_files.py `_write_parquet`), pages released.

The default is an hour of Bybit liquidations at 2,000/s flushed every 10 s compressed into a few
minutes. The soak samples RSS at random moments, so the peak during a flush is what it sees when
a sample lands in one.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_790_000_000_000_000_000
IDS = ("BTCUSDT-LINEAR.BYBIT", "ETHUSDT-LINEAR.BYBIT")
VARIANTS = {"merge-keep": "merge, pages kept", "merge-release": "merge, pages released", "stream": "streamed append"}


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def reset_peak() -> None:
    """Start VmHWM (peak RSS) afresh from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def append_by_merging(store, batch) -> None:
    """The append before it was streamed: the whole day's file read, merged and re-written."""
    from actors import catalog_files as cf
    from actors.catalog_schema import build_tables

    for (kind, instrument_id), new in build_tables(batch).items():
        directory = store.directory(kind, instrument_id)
        directory.mkdir(parents=True, exist_ok=True)
        ts = new["ts_init"]
        day_file = cf._same_day_predecessor(cf.list_files(directory), ts[0].as_py(), ts[-1].as_py())
        touched = [day_file] if day_file else []
        merged, _ = cf.merge_tables(cf.read_files(touched, new.schema), new)
        cf.replace_files(directory, merged, touched, durable=False)


def run_variant(variant: str, flushes: int, rows_per_flush: int) -> None:
    """Child process: the flush loop; prints one `rss <flush> <after MB> <peak MB>` line per flush."""
    sys.path.insert(0, str(ROOT))
    import pyarrow as pa

    from actors.catalog_store import CatalogStore
    from messages.events import Liquidation

    with tempfile.TemporaryDirectory() as root:
        store = CatalogStore(root, durable=False, append_same_day=True)
        ts, spent = T0, 0.0
        for k in range(flushes):
            batch = []
            for i in range(rows_per_flush):
                ts += 500_000  # 2,000/s of event time
                q, p = 1.0 + i % 97, 100.0 + k
                batch.append(Liquidation(venue="BYBIT", symbol="X", instrument_id=IDS[i % 2], ts_event=ts, ts_recv=ts,
                                         side="LONG", quantity=q, price=p, value=q * p))
            reset_peak()
            started = time.perf_counter()
            if variant == "stream":
                store.write(batch)
            else:
                append_by_merging(store, batch)
            if variant != "merge-keep":
                pa.default_memory_pool().release_unused()
            spent += time.perf_counter() - started
            print(f"rss {k} {rss_mb():.1f} {rss_mb('VmHWM'):.1f}", flush=True)
        print(f"seconds {spent:.3f}", flush=True)


def measure(variant: str, flushes: int, rows_per_flush: int) -> tuple[list[float], list[float], float]:
    out = subprocess.run([sys.executable, __file__, "--child", variant,
                          "--flushes", str(flushes), "--rows-per-flush", str(rows_per_flush)],
                         check=True, capture_output=True, text=True).stdout.split("\n")
    rows = [line.split() for line in out if line.startswith("rss ")]
    seconds = next(float(line.split()[1]) for line in out if line.startswith("seconds "))
    return [float(r[2]) for r in rows], [float(r[3]) for r in rows], seconds


def describe(variant: str, flushes: int, rows_per_flush: int) -> dict[str, float]:
    after, peak, seconds = measure(variant, flushes, rows_per_flush)
    warm = len(after) // 5  # after a fifth of the run, as the soak does
    after, peak = after[warm:], peak[warm:]
    hours_per_flush = 10 / 3600  # one flush stands for 10 s of the soak's load
    slope = statistics.linear_regression(range(len(peak)), peak).slope / hours_per_flush
    figures = {"after_min": min(after), "after_max": max(after), "peak_median": statistics.median(peak),
               "peak_max": max(peak), "rows_s": flushes * rows_per_flush / seconds}
    print(f"{VARIANTS[variant]:<22} after a flush {figures['after_min']:6.1f}-{figures['after_max']:6.1f} MB   "
          f"peak in a flush median {figures['peak_median']:6.1f} max {figures['peak_max']:6.1f} MB "
          f"(slope {slope:+6.1f} MB/h of soak time)   {figures['rows_s']:,.0f} rows/s", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flushes", type=int, default=300)
    parser.add_argument("--rows-per-flush", type=int, default=20_000)
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_variant(args.child, args.flushes, args.rows_per_flush)
        return
    print(f"{args.flushes} flushes of {args.rows_per_flush:,} liquidations into one catalog (day files up to 8 MB); "
          "figures after a warm-up of a fifth of the flushes")
    runs = {v: describe(v, args.flushes, args.rows_per_flush) for v in VARIANTS}
    keep, merged, streamed = runs["merge-keep"], runs["merge-release"], runs["stream"]
    swing = {v: r["after_max"] - r["after_min"] for v, r in runs.items()}
    print(f"RSS swing after a flush: released {swing['merge-release']:.1f} MB vs kept {swing['merge-keep']:.1f} MB "
          f"({swing['merge-release'] / swing['merge-keep']:.2f}x)")
    print(f"peak RSS in a flush, max: streamed {streamed['peak_max']:.1f} MB vs merged {merged['peak_max']:.1f} MB "
          f"({streamed['peak_max'] / merged['peak_max']:.2f}x); rows/s {streamed['rows_s'] / merged['rows_s']:.2f}x; "
          f"vs pages kept {streamed['peak_max'] / keep['peak_max']:.2f}x")


if __name__ == "__main__":
    main()
