"""Writer storage throughput: rows/s of CatalogStore.write (events -> Nautilus-layout Parquet,
with fsync) against NautilusTrader's own ParquetDataCatalog.write_data for the same rows.

    .venv/bin/python bench/writer_throughput.py [--rows 200000] [--repeat 3]
    .venv/bin/python bench/writer_throughput.py --flush-instruments 1300 [--flushes 3]

The second form times the writer's flush at `symbols: all` scale: one row of open interest and
one of funding (three directories) per instrument, appended to the day's files as the writer
does, with the batched syncs of storage/durability.py against an fsync of every file and
directory (the protocol before) and against no sync at all, in the same run.

Our side includes converting the msgspec events; the baseline gets ready-made Nautilus objects
(their construction is not timed), so the ratio is conservative for us.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.store import CatalogStore  # noqa: E402
from messages.events import FundingRate, OpenInterest  # noqa: E402

T0 = 1_760_000_000_000_000_000
IDS = ["BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT", "BTC-USD-PERP.HYPERLIQUID"]


def make_events(n: int) -> list:
    """Half open interest, half funding, spread over four instruments, 1 s apart."""
    out = []
    for i in range(n):
        iid = IDS[i % len(IDS)]
        venue = iid.rsplit(".", 1)[1]
        ts = T0 + (i // len(IDS)) * 1_000_000_000
        if i % 2 == 0:
            out.append(OpenInterest(venue=venue, symbol="X", instrument_id=iid, ts_event=ts, ts_recv=ts, open_interest=1000.0 + i, open_interest_value=1e8 + i))
        else:
            out.append(FundingRate(venue=venue, symbol="X", instrument_id=iid, ts_event=ts, ts_recv=ts, rate=0.0001, interval_minutes=480, next_funding_ns=ts + 3600 * 10**9, mark_price=100.0))
    return out


def to_nautilus(events: list) -> list:
    from decimal import Decimal

    from nautilus_trader.model.data import FundingRateUpdate
    from nautilus_trader.model.identifiers import InstrumentId

    from messages.nautilus import OpenInterest as NOpenInterest

    out = []
    for e in events:
        iid = InstrumentId.from_str(e.instrument_id)
        if isinstance(e, OpenInterest):
            out.append(NOpenInterest(e.ts_event, e.ts_event, iid, e.open_interest, e.open_interest_value))
        else:
            out.append(FundingRateUpdate(iid, Decimal(str(e.rate)), e.ts_event, e.ts_event, interval=e.interval_minutes, next_funding_ns=e.next_funding_ns))
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class PerDirectoryFsync(CatalogStore):
    """The flush as it was: every directory's file and the directory fsynced as it is written."""

    def _merge(self, kind, directory, table):
        deferred, self._deferred = self._deferred, None
        try:
            return super()._merge(kind, directory, table)
        finally:
            self._deferred = deferred


def flush_events(instruments: int, t: int) -> list:
    out = []
    for i in range(instruments):
        iid = f"C{i}USDT-PERP.BINANCE"
        out.append(OpenInterest(venue="binance", symbol="X", instrument_id=iid, ts_event=t, ts_recv=t, open_interest=1000.0 + i, open_interest_value=1e8 + i))
        out.append(FundingRate(venue="binance", symbol="X", instrument_id=iid, ts_event=t, ts_recv=t, rate=0.0001, interval_minutes=480, next_funding_ns=t + 3600 * 10**9, mark_price=100.0))
    return out


def bench_flush(instruments: int, flushes: int) -> None:
    """Median flush time per store variant; each variant gets its own catalog, first flush untimed."""
    variants = {"fsync per file and directory (before)": lambda root: PerDirectoryFsync(root, append_same_day=True),
                "batched syncfs (storage/durability.py)": lambda root: CatalogStore(root, append_same_day=True),
                "no sync at all (floor)": lambda root: CatalogStore(root, durable=False, append_same_day=True)}
    tmp = Path(tempfile.mkdtemp(prefix="bench-flush-"))  # on the disk: a tmpfs would make fsync free
    try:
        results = {}
        for round_ in range(flushes + 1):  # the variants interleaved: the machine's load hits them alike
            events = flush_events(instruments, T0 + round_ * 60 * 10**9)
            for name, make in variants.items():
                store = make(tmp / name.split()[0])
                took = timed(lambda: store.write(events))
                if round_:
                    results.setdefault(name, []).append(took)
        print(f"flush of {instruments:,} instruments x (open interest + funding) = {3 * instruments:,} directories, "
              f"1 row each, appended to the day's file; median of {flushes}")
        for name, times in results.items():
            m = statistics.median(times)
            print(f"  {name:40s} {m:7.2f} s  {m / (3 * instruments) * 1000:6.2f} ms/directory")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flush-instruments", type=int, help="time one writer flush over this many instruments instead")
    ap.add_argument("--flushes", type=int, default=3)
    args = ap.parse_args()
    if args.flush_instruments:
        bench_flush(args.flush_instruments, args.flushes)
        return
    events = make_events(args.rows)
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    nautilus_objects = to_nautilus(events)
    ours, theirs = [], []
    for _ in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="bench-writer-"))
        try:
            ours.append(timed(lambda: CatalogStore(tmp / "ours").write(events)))
            catalog = ParquetDataCatalog(str(tmp / "theirs"))
            # write_data wants one type per call for custom data; group as a user would
            by_type: dict[type, list] = {}
            for o in nautilus_objects:
                by_type.setdefault(type(o), []).append(o)
            theirs.append(timed(lambda: [catalog.write_data(v) for v in by_type.values()]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"rows: {args.rows:,} (open interest + funding, 4 instruments), median of {args.repeat}")
    print(f"CatalogStore.write            {o:7.3f} s  {args.rows / o:12,.0f} rows/s  (fsync on)")
    print(f"ParquetDataCatalog.write_data {t:7.3f} s  {args.rows / t:12,.0f} rows/s")
    print(f"ratio (ours / baseline rows/s): {t / o:.2f}x")


if __name__ == "__main__":
    main()
