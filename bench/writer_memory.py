"""Writer memory over many flushes: RSS of the storage path (CatalogStore.write appending into
the day's file, as the writer does) with pyarrow's unused memory handed back after each flush
(what actors/writer.py does) against the same loop without it, measured in the same run.

    .venv/bin/python bench/writer_memory.py [--flushes 300] [--rows-per-flush 20000]

The default is an hour of Bybit liquidations at 2,000/s flushed every 10 s (the soak's load)
compressed into a minute or two. Each variant runs in its own process, so one's allocator state
does not colour the other's figures.
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


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def run_variant(flushes: int, rows_per_flush: int, release: bool) -> None:
    """Child process: the flush loop; prints one `rss <flush> <MB>` line per flush."""
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
            started = time.perf_counter()
            store.write(batch)
            if release:
                pa.default_memory_pool().release_unused()
            spent += time.perf_counter() - started
            print(f"rss {k} {rss_mb():.1f}", flush=True)
        print(f"seconds {spent:.3f}", flush=True)


def measure(flushes: int, rows_per_flush: int, release: bool) -> tuple[list[float], float]:
    out = subprocess.run([sys.executable, __file__, "--child", "release" if release else "keep",
                          "--flushes", str(flushes), "--rows-per-flush", str(rows_per_flush)],
                         check=True, capture_output=True, text=True).stdout.split("\n")
    rss = [float(line.split()[2]) for line in out if line.startswith("rss ")]
    seconds = next(float(line.split()[1]) for line in out if line.startswith("seconds "))
    return rss, seconds


def describe(name: str, rss: list[float], seconds: float, flushes: int, rows_per_flush: int) -> float:
    warm = rss[len(rss) // 5:]  # after a fifth of the run, as the soak does
    hours_per_flush = 10 / 3600  # one flush stands for 10 s of the soak's load
    slope = statistics.linear_regression(range(len(warm)), warm).slope / hours_per_flush
    print(f"{name:<26} rss start {rss[0]:6.1f}  min {min(warm):6.1f}  max {max(warm):6.1f}  end {rss[-1]:6.1f} MB  "
          f"swing {max(warm) - min(warm):5.1f} MB  slope {slope:+7.1f} MB/h (of soak time)  "
          f"{flushes * rows_per_flush / seconds:,.0f} rows/s")
    return max(warm) - min(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flushes", type=int, default=300)
    parser.add_argument("--rows-per-flush", type=int, default=20_000)
    parser.add_argument("--child", choices=["release", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_variant(args.flushes, args.rows_per_flush, args.child == "release")
        return
    print(f"{args.flushes} flushes of {args.rows_per_flush:,} liquidations into one catalog (day files up to 8 MB)")
    keep = describe("baseline (pool keeps pages)", *measure(args.flushes, args.rows_per_flush, False),
                    args.flushes, args.rows_per_flush)
    release = describe("writer (release_unused)", *measure(args.flushes, args.rows_per_flush, True),
                       args.flushes, args.rows_per_flush)
    print(f"RSS swing after warm-up: {release:.1f} MB vs {keep:.1f} MB ({release / keep:.2f}x of baseline)")


if __name__ == "__main__":
    main()
