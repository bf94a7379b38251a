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
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from storage import files as cf  # noqa: E402
from storage.schema import LIQUIDATION, LIQUIDATION_SCHEMA  # noqa: E402
from storage.store import CatalogStore  # noqa: E402
from messages.events import FundingRate, Liquidation, OpenInterest  # noqa: E402

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


def flush_events(instruments: int, t: int, liquidations: int = 0, first: int = 0) -> list:
    """A flush: per instrument a row of OI and of funding and `liquidations` liquidations from `t` on."""
    out = []
    for i in range(first, first + instruments):
        iid = f"C{i}USDT-PERP.BINANCE"
        out.append(OpenInterest(venue="binance", symbol="X", instrument_id=iid, ts_event=t, ts_recv=t, open_interest=1000.0 + i, open_interest_value=1e8 + i))
        out.append(FundingRate(venue="binance", symbol="X", instrument_id=iid, ts_event=t, ts_recv=t, rate=0.0001, interval_minutes=480, next_funding_ns=t + 3600 * 10**9, mark_price=100.0))
        out += [Liquidation(venue="binance", symbol="X", instrument_id=iid, ts_event=t + k * 7_000_000, ts_recv=t, side="SHORT" if k % 3 else "LONG",
                            quantity=0.001 * (k + 1), price=100.0 + k % 50, value=0.1 * (k + 1)) for k in range(liquidations)]
    return out


def prefill(root: Path, instruments: int, minutes: int, liquidation_rows: int, day_start: int) -> None:
    """The day so far, as one file per directory (main's layout; the new one starts its tiers after it):
    OI and funding every minute, `liquidation_rows` liquidations (built in pyarrow: millions of rows)."""
    store = CatalogStore(root, durable=False)
    for first in range(0, instruments, 100):
        n = min(100, instruments - first)
        store.write([e for m in range(minutes) for e in flush_events(n, day_start + m * 60 * 10**9, first=first)])
    rng = np.random.default_rng(1)
    ts = day_start + np.sort(rng.choice(minutes * 60_000, liquidation_rows, replace=False)).astype(np.uint64) * 1_000_000
    columns = {"side": pa.array(np.where(rng.random(liquidation_rows) < 0.5, "LONG", "SHORT")),
               "quantity": pa.array(rng.random(liquidation_rows).round(3)), "price": pa.array(100 + rng.random(liquidation_rows).round(2)),
               "value": pa.array(rng.random(liquidation_rows).round(2)), "type": pa.array(["Liquidation"] * liquidation_rows),
               "ts_event": pa.array(ts), "ts_init": pa.array(ts)}
    for i in range(instruments):
        iid = f"C{i}USDT-PERP.BINANCE"
        table = pa.table({"instrument_id": pa.array([iid] * liquidation_rows), **columns}, schema=LIQUIDATION_SCHEMA)
        directory = store.directory(LIQUIDATION, iid)
        directory.mkdir(parents=True, exist_ok=True)
        cf.replace_files(directory, table, durable=False)


@contextlib.contextmanager
def append_bound(nbytes: int):
    saved, cf.APPEND_MAX_BYTES = cf.APPEND_MAX_BYTES, nbytes
    try:
        yield
    finally:
        cf.APPEND_MAX_BYTES = saved


def bench_flush(instruments: int, flushes: int, hours: float, liquidations: int, day_rows: int) -> None:
    """Median flush time per store variant, each on its own copy of one pre-filled day, interleaved."""
    variants = {  # name: (store, the bound under which the day's file is re-written)
        "main: fsync each file and dir, re-write the day's file < 8 MB": (lambda root: _untiered(PerDirectoryFsync(root, append_same_day=True)), 8 << 20),
        "fsync branch: batched syncs, re-write < 8 MB": (lambda root: _untiered(CatalogStore(root, append_same_day=True)), 8 << 20),
        "now: batched syncs, append < 128 KB, tiers": (lambda root: CatalogStore(root, append_same_day=True), cf.APPEND_MAX_BYTES),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-flush-"))  # on the disk: a tmpfs would make fsync free
    minutes = int(hours * 60)
    day_start = T0 - T0 % (86_400 * 10**9)
    try:
        started = time.perf_counter()
        prefill(tmp / "template", instruments, minutes, day_rows, day_start)
        size = sum(p.stat().st_size for p in (tmp / "template").rglob("*.parquet"))
        print(f"pre-filled {hours:g} h of the day: {instruments:,} instruments, {day_rows:,} liquidations each, "
              f"{size / 2**20:,.0f} MB, in {time.perf_counter() - started:.0f} s")
        stores = {}
        for name, (make, _) in variants.items():
            shutil.copytree(tmp / "template", tmp / name.split(":")[0])
            stores[name] = make(tmp / name.split(":")[0])
        results: dict[str, list[float]] = {}
        for round_ in range(flushes + 1):  # the variants interleaved: the machine's load hits them alike
            events = flush_events(instruments, day_start + (minutes + round_) * 60 * 10**9, liquidations)
            for name, (_, bound) in variants.items():
                with append_bound(bound):
                    took = timed(lambda: stores[name].write(events))
                if round_:  # the first is a warm-up (and starts the new layout's file after the day's)
                    results.setdefault(name, []).append(took)
        directories = 4 * instruments
        print(f"flush of {instruments:,} instruments x (OI + funding: 3 directories, 1 row each; liquidations: "
              f"{liquidations} rows) = {directories:,} directories; median of {flushes}")
        for name, times in results.items():
            m = statistics.median(times)
            print(f"  {name:62s} {m:7.2f} s  {m / directories * 1000:6.2f} ms/directory")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _untiered(store: CatalogStore) -> CatalogStore:
    store.tiers = None
    return store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--flush-instruments", type=int, help="time one writer flush over this many instruments instead")
    ap.add_argument("--flushes", type=int, default=3)
    ap.add_argument("--hours", type=float, default=12.0, help="with --flush-instruments: the day so far, pre-filled")
    ap.add_argument("--day-liquidations", type=int, default=26_640, help="liquidations per instrument so far (37 a minute: the cascade bench)")
    ap.add_argument("--liquidations", type=int, default=37, help="liquidations per instrument in each timed flush")
    args = ap.parse_args()
    if args.flush_instruments:
        bench_flush(args.flush_instruments, args.flushes, args.hours, args.liquidations, args.day_liquidations)
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
