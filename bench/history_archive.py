"""Years of 5-minute Binance open interest, archive + REST, against the emulator: `derivs history oi`
(data.binance.vision files for what REST no longer has, REST for the last 30 days, CatalogStore)
vs a plain loop that downloads the same archive files one after the other, checks their
checksums, parses them with the csv module, pages REST with ccxt's `paginate`, and writes
everything with NautilusTrader's `ParquetDataCatalog.write_data`.

    .venv/bin/python bench/history_archive.py [--years 4] [--symbol BTC]

The emulator builds each archive file from its market model on first request (~15 ms of CPU a
day's file): the first pass over the files is timed on its own ("cold": what the emulator costs),
then both contenders run against the warm emulator, which then answers like a static file
server, as the real archive (a CDN) does. Rate limits are the venue's (REST part). Figures:
wall time, rows stored, the ratio baseline / ours, and seconds per 30 days (SC-002: 60 s).
"""

import argparse
import asyncio
import csv
import hashlib
import io
import sys
import tempfile
import time
import urllib.request
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.history import run_history  # noqa: E402
from emulator.process import spawn_emulator  # noqa: E402
from venues.binance.archive import metrics_chunks, metrics_path  # noqa: E402

MS = 1_000_000
NS = 1_000_000_000
DAY_MS = 86_400_000


def day_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


async def warm(url: str, raw: str, since_ms: int, until_ms: int) -> int:
    return sum([c.files async for c in metrics_chunks(raw, since_ms, until_ms, url)])


def get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


async def rest_part(url: str, symbol: str, since_ms: int, until_ms: int) -> list[dict]:
    from venues import adapter

    ad = adapter("binance")
    client = ad.client(url)
    try:
        market = ad.resolve(await client.load_markets(), symbol)
        return await client.fetch_open_interest_history(market["symbol"], "5m", since_ms, None,
                                                        {"paginate": True, "paginationCalls": 1000, "until": until_ms})
    finally:
        await client.close()


def baseline(url: str, symbol: str, raw: str, since: date, floor_ms: int, until_ms: int, catalog: Path) -> int:
    """What a user would write with urllib, zipfile, csv, ccxt and Nautilus alone."""
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from messages.nautilus import OpenInterest

    iid = InstrumentId.from_str(f"{raw}-PERP.BINANCE")
    by_ts: dict[int, tuple[float, float]] = {}
    d = since
    while day_ms(d) < floor_ms:
        path = f"{url}/{metrics_path(raw, d)}"
        body, checksum = get(path), get(path + ".CHECKSUM")
        d += timedelta(days=1)
        if body is None or checksum is None or hashlib.sha256(body).hexdigest() != checksum.split()[0].decode():
            continue
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            text = z.read(z.namelist()[0]).decode()
        for row in csv.DictReader(io.StringIO(text)):
            t = datetime.strptime(row["create_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
            ts = (round(t) + 150) // 300 * 300 * 1000
            if ts < floor_ms:
                by_ts[ts] = (float(row["sum_open_interest"]), float(row["sum_open_interest_value"]))
    for r in asyncio.run(rest_part(url, symbol, floor_ms, until_ms)):
        if r["timestamp"] < until_ms:  # --until is exclusive
            by_ts.setdefault(r["timestamp"], (float(r["openInterestAmount"] or 0.0), float(r["openInterestValue"] or 0.0)))
    data = [OpenInterest(instrument_id=iid, open_interest=oi, open_interest_value=value, ts_event=ts * MS, ts_init=ts * MS)
            for ts, (oi, value) in sorted(by_ts.items())]
    ParquetDataCatalog(str(catalog)).write_data(data)
    return len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", type=float, default=4.0)
    ap.add_argument("--symbol", default="BTC")
    args = ap.parse_args()
    raw = f"{args.symbol}USDT"
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        emu = spawn_emulator(Path(tmp) / "emu.json", "--venues", "binance", "--rate-limits", log=Path(tmp) / "emu.log")
        try:
            url = emu.urls["binance"]
            now_ms = time.time_ns() // MS
            since = datetime.now(UTC).date() - timedelta(days=round(args.years * 365.25))
            since_ms, until_ms = day_ms(since), now_ms // 300_000 * 300_000
            floor_ms = now_ms - 30 * DAY_MS + 3_600_000  # both: REST from about here on
            days = (until_ms - since_ms) / DAY_MS
            t0 = time.perf_counter()
            files = asyncio.run(warm(url, raw, since_ms, floor_ms))
            cold_s = time.perf_counter() - t0
            print(f"{args.years:g} years of 5-minute {raw} OI ({since}..now, {days:.0f} days): archive + REST, emulator "
                  f"on loopback\ncold pass over the {files} archive files (the emulator building them): {cold_s:.1f} s")
            t0 = time.perf_counter()
            s = asyncio.run(run_history("oi", "binance", args.symbol, since_ms * MS, until_ms * MS, "5m", url,
                                        str(Path(tmp) / "ours"), False))
            ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            n = baseline(url, args.symbol, raw, since, floor_ms, until_ms, Path(tmp) / "base")
            base_s = time.perf_counter() - t0
            print(f"{'':<34}{'s':>8}{'rows':>9}{'s / 30 days':>13}")
            print(f"{'ours (derivs history oi)':<34}{ours_s:>8.2f}{s.written:>9}{ours_s / days * 30:>13.3f}")
            print(f"{'plain loop + write_data':<34}{base_s:>8.2f}{n:>9}{base_s / days * 30:>13.3f}")
            print(f"ratio baseline / ours: {base_s / ours_s:.2f}x; holes (the archive's 404 days, the venue's lost "
                  f"buckets): {len(s.venue_holes)}; error: {s.error}")
            print("ours: 8 files in flight, checksums verified, pyarrow CSV, rows stored a month at a time, plus the "
                  "instrument definition;\nbaseline: one file at a time, no per-row validation, one write at the end; "
                  "its time includes importing nautilus_trader.")
        finally:
            emu.proc.terminate()
            emu.proc.wait(10)


if __name__ == "__main__":
    main()
