"""Writer memory over many flushes: RSS of the storage path (CatalogStore.write appending into
the day's file, as the writer does), after each flush and at its peak during the flush.

    .venv/bin/python bench/writer_memory.py [--flushes 300] [--rows-per-flush 20000]

The rows are liquidations of two instruments, two per instrument per ms, and every flush cuts
through a ms as the soak's flushes do: about every other flush, an instrument's first new row
lands on a ts_init below its last stored one, so the rows meet the day's file instead of
following it.

Four variants, measured in the same run, each in its own process (one's allocator state must
not colour another's figures):

- `merge, pages kept`: each flush reads the whole day's file (up to 8 MB), merges the new rows
  in and re-writes it; pyarrow's allocator keeps the pages it used (the writer until 436fbc0);
- `merge, pages released`: the same with `release_unused()` after each flush (until 353d6bf);
- `stream, merge on overlap`: the day's file streamed into the new one a row group at a time
  when the rows follow it, read whole and merged when they meet it (until 08a94c8);
- `stream, merge the tail` (the writer now): the file's row groups before the new rows' ms
  streamed, only the rest merged (storage/files.py `split_at`).

One flush stands for 10 s of the soak's load (2,000/s). The soak samples RSS at random moments,
so the peak during a flush is what it sees when a sample lands in one. Each variant's catalog
is counted at the end: every row must be stored once.
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
VARIANTS = {"merge-keep": "merge, pages kept", "merge-release": "merge, pages released",
            "stream-merge": "stream, merge on overlap", "stream": "stream, merge the tail"}


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def reset_peak() -> None:
    """Start VmHWM (peak RSS) afresh from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def write_the_old_ways(store, batch, stream_when_following: bool) -> None:
    """The writer's flush before `split_at`: the day's file (and any file the rows meet) read
    whole and merged; with `stream_when_following`, rows that follow the day's file are
    streamed in instead (the code of that time is today's path when nothing overlaps)."""
    from storage import files as cf
    from storage.batches import build_tables
    from storage.slots import liquidation_row_slot, next_slot

    for (kind, instrument_id), new in build_tables(batch).items():
        directory = store.directory(kind, instrument_id)
        directory.mkdir(parents=True, exist_ok=True)
        start, end = new["ts_init"][0].as_py(), new["ts_init"][-1].as_py()
        files = cf.list_files(directory)
        touched = cf.overlapping(files, start, end)
        if not touched and stream_when_following:
            cf.merge_into(directory, new, False, True, (liquidation_row_slot, next_slot))
            continue
        day_file = None if touched else cf._same_day_predecessor(files, start, end)
        touched = touched or ([day_file] if day_file else [])
        existing = cf.read_files(touched, new.schema)
        merged, _ = cf.merge_tables(existing, cf.place_distinct(existing, new, liquidation_row_slot, next_slot))
        cf.replace_files(directory, merged, touched, durable=False)


def run_variant(variant: str, flushes: int, rows_per_flush: int) -> None:
    """Child process: the flush loop; prints one `rss <flush> <after MB> <peak MB>` line per flush."""
    sys.path.insert(0, str(ROOT))
    import pyarrow as pa
    import pyarrow.parquet as pq

    from storage.store import CatalogStore
    from messages.events import Liquidation

    with tempfile.TemporaryDirectory() as root:
        store = CatalogStore(root, durable=False, append_same_day=True)
        spent = 0.0
        for k in range(flushes):
            batch = []
            for i in range(rows_per_flush):
                r = k * rows_per_flush + i
                ts = T0 + (r + 2) // 4 * 1_000_000  # 4 rows per ms; a flush's first two share the last ms
                q, p = round(0.001 * (1 + r % 997), 3), 100.0 + k
                batch.append(Liquidation(venue="BYBIT", symbol="X", instrument_id=IDS[r % 2], ts_event=ts, ts_recv=ts,
                                         side="LONG", quantity=q, price=p, value=q * p))
            reset_peak()
            started = time.perf_counter()
            if variant == "stream":
                store.write(batch)
            else:
                write_the_old_ways(store, batch, stream_when_following=variant == "stream-merge")
            if variant != "merge-keep":
                pa.default_memory_pool().release_unused()
            spent += time.perf_counter() - started
            print(f"rss {k} {rss_mb():.1f} {rss_mb('VmHWM'):.1f}", flush=True)
        stored = sum(pq.ParquetFile(f).metadata.num_rows for f in Path(root).rglob("*.parquet"))
        print(f"seconds {spent:.3f} stored {stored}", flush=True)


def measure(variant: str, flushes: int, rows_per_flush: int) -> tuple[list[float], list[float], float, int]:
    out = subprocess.run([sys.executable, __file__, "--child", variant,
                          "--flushes", str(flushes), "--rows-per-flush", str(rows_per_flush)],
                         check=True, capture_output=True, text=True).stdout.split("\n")
    rows = [line.split() for line in out if line.startswith("rss ")]
    _, seconds, _, stored = next(line.split() for line in out if line.startswith("seconds "))
    return [float(r[2]) for r in rows], [float(r[3]) for r in rows], float(seconds), int(stored)


def describe(variant: str, flushes: int, rows_per_flush: int) -> dict[str, float]:
    after, peak, seconds, stored = measure(variant, flushes, rows_per_flush)
    if stored != flushes * rows_per_flush:
        sys.exit(f"{VARIANTS[variant]}: {stored:,} rows stored of {flushes * rows_per_flush:,}: the figures mean nothing")
    warm = len(after) // 5  # after a fifth of the run, as the soak does
    after, peak = after[warm:], peak[warm:]
    hours_per_flush = 10 / 3600  # one flush stands for 10 s of the soak's load
    slope = statistics.linear_regression(range(len(peak)), peak).slope / hours_per_flush
    figures = {"after_min": min(after), "after_max": max(after), "peak_median": statistics.median(peak),
               "peak_max": max(peak), "rows_s": flushes * rows_per_flush / seconds}
    print(f"{VARIANTS[variant]:<25} after a flush {figures['after_min']:6.1f}-{figures['after_max']:6.1f} MB   "
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
    keep, merged, before, now = (runs[v] for v in VARIANTS)
    print(f"every variant stored all {args.flushes * args.rows_per_flush:,} rows once")
    print(f"RSS swing after a flush: released {merged['after_max'] - merged['after_min']:.1f} MB "
          f"vs kept {keep['after_max'] - keep['after_min']:.1f} MB")
    for name, base in (("merge on overlap", before), ("whole-file merge", merged)):
        print(f"tail merge vs {name}: peak RSS in a flush median {now['peak_median']:.1f} vs {base['peak_median']:.1f} MB "
              f"({now['peak_median'] / base['peak_median']:.2f}x), max {now['peak_max']:.1f} vs {base['peak_max']:.1f} MB "
              f"({now['peak_max'] / base['peak_max']:.2f}x); rows/s {now['rows_s'] / base['rows_s']:.2f}x")

if __name__ == "__main__":
    main()
