"""Binance's public data archive (data.binance.vision, no key): 5-minute open interest older than
REST's 30 days, and settled funding by month.

    async for chunk in metrics_chunks("BTCUSDT", start_ms, end_ms, ARCHIVE_URL):
        chunk.table   # ts_ms, sum_open_interest, sum_open_interest_value, the four ratio columns
        chunk.holes   # [ArchiveHole(name, start_ms, end_ms, reason)]: days not had, and why

Files (Binance's `binance-public-data` repository names the paths; their content is what users
who downloaded them report, with recorded samples; tests/fixtures/real/binance/archive_*.csv):
- `data/futures/um/daily/metrics/<SYMBOL>/<SYMBOL>-metrics-<YYYY-MM-DD>.zip`, one CSV with a
  header in every era: `create_time,symbol,sum_open_interest,sum_open_interest_value,
  count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,
  sum_taker_long_short_vol_ratio`; `create_time` is `YYYY-MM-DD HH:MM:SS` UTC. BTCUSDT's first
  file is 2020-09-01. A day's file appears after the day is over.
- `data/futures/um/monthly/fundingRate/<SYMBOL>/<SYMBOL>-fundingRate-<YYYY-MM>.zip`: header
  `calc_time,funding_interval_hours,last_funding_rate`, `calc_time` in epoch ms. No mark price.
- `<file>.CHECKSUM` beside each: `<sha256 hex>  <file name>`. Every file is verified.

Time alignment: REST's `openInterestHist` gives each 5-minute bucket a `timestamp` on the
5-minute boundary (the docs' example: 1583127900000 = 05:45:00.000); the archive writes the same
snapshot's `create_time` to the second, on the boundary, sometimes a second late
(`2026-07-11 00:05:01`). Both are the snapshot Binance's statistics take every 5 minutes, so
`ts_ms` = create_time rounded to the nearest 5-minute boundary = the REST timestamp. (Offline,
the values themselves could not be compared with a live payload of the same instant.)
`calc_time` is the settlement time, sometimes a millisecond late (`1780272000001`): rounded to
the minute, it is REST's `fundingTime`.

Real quirks handled: duplicated rows (every row twice in the files before 2021-05-22, single
rows later) are dropped by timestamp; a file whose rows run a slot into the next day is taken
by its rows' times, not its name. A missing file (404), a corrupt zip, a checksum mismatch or an
unexpected header: nothing is taken from that file, it becomes a hole naming the file and the
reason, and the other files carry on. A file that could not be downloaded (connection refused,
timeout, HTTP 5xx) is a hole of kind "unreachable": the archive may well have it.

The ratio columns stay in `chunk.table` for Python users; they are not stored in the catalog:
`OpenInterest` has no field for a ratio and there is no event/Nautilus data type for them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ARCHIVE_URL = "https://data.binance.vision"
METRICS_COLUMNS = ("create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
                   "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio", "count_long_short_ratio",
                   "sum_taker_long_short_vol_ratio")
RATIO_COLUMNS = METRICS_COLUMNS[4:]
FUNDING_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")
SNAPSHOT_MS = 5 * 60_000
DAY_MS = 86_400_000
CONCURRENCY = 8  # files in flight: polite to a public bucket, and enough to fill the pipe
CHUNK_FILES = 32  # files per chunk handed to the caller (a month of days): bounded memory, steady progress
_TIMEOUT = aiohttp.ClientTimeout(total=120)


class ArchiveFileError(Exception):
    """A published file that cannot be used; the message names it."""


class ArchiveUnreachable(Exception):
    """A file that could not be downloaded this time (connection, timeout, HTTP 5xx): not a hole of the archive."""


@dataclass(frozen=True)
class ArchiveHole:
    name: str  # file name, e.g. BTCUSDT-metrics-2023-03-04.zip
    start_ms: int
    end_ms: int  # inclusive
    reason: str
    kind: str  # "missing": not published (404); "unusable": published, but broken; "unreachable": not downloaded

    @property
    def missing(self) -> bool:
        return self.kind == "missing"


@dataclass
class ArchiveChunk:
    table: pa.Table
    holes: list[ArchiveHole] = field(default_factory=list)
    files: int = 0  # files asked for


def metrics_path(symbol: str, day: date) -> str:
    return f"data/futures/um/daily/metrics/{symbol}/{symbol}-metrics-{day.isoformat()}.zip"


def funding_path(symbol: str, year: int, month: int) -> str:
    return f"data/futures/um/monthly/fundingRate/{symbol}/{symbol}-fundingRate-{year:04d}-{month:02d}.zip"


def _day_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


# -- one file -------------------------------------------------------------------------------------


def verified(name: str, body: bytes, checksum: str) -> bytes:
    """`body` if its sha256 is the one its CHECKSUM file gives, else ArchiveFileError."""
    parts = checksum.split()
    if len(parts) != 2 or parts[1] != name or len(parts[0]) != 64:
        raise ArchiveFileError(f"{name}.CHECKSUM is not '<sha256>  {name}': {checksum[:120]!r}")
    got = hashlib.sha256(body).hexdigest()
    if got != parts[0].lower():
        raise ArchiveFileError(f"{name}: checksum mismatch: the file's sha256 is {got}, {name}.CHECKSUM says {parts[0]}")
    return body


def read_csv(name: str, body: bytes, columns: tuple[str, ...], types: dict[str, pa.DataType]) -> pa.Table:
    """The one CSV in a zip, header checked, typed; ArchiveFileError naming the file otherwise."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            members = [n for n in z.namelist() if n.endswith(".csv")]
            if len(members) != 1:
                raise ArchiveFileError(f"{name}: expected one CSV in the zip, found {members or z.namelist()}")
            text = z.read(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise ArchiveFileError(f"{name}: not a readable zip ({exc})") from exc
    try:
        table = pacsv.read_csv(io.BytesIO(text), convert_options=pacsv.ConvertOptions(column_types=types))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ArchiveFileError(f"{name}: unreadable CSV ({exc})") from exc
    if tuple(table.column_names) != columns:
        raise ArchiveFileError(f"{name}: header {','.join(table.column_names)!r}, expected {','.join(columns)!r}")
    return table


def _rounded(ms: pa.Array, unit_ms: int) -> pa.Array:
    """Times to the nearest multiple of unit_ms (the archive's late seconds / milliseconds)."""
    return pc.multiply(pc.divide(pc.add(ms, unit_ms // 2), unit_ms), unit_ms)


def _dedupe(table: pa.Table) -> pa.Table:
    """Sorted by ts_ms, one row per ts_ms (the first era's files carry each row twice)."""
    table = table.sort_by("ts_ms")
    ts = table["ts_ms"].combine_chunks()
    if len(ts) < 2:
        return table
    keep = pc.not_equal(ts.slice(1), ts.slice(0, len(ts) - 1))
    return table.filter(pa.concat_arrays([pa.array([True]), keep]))


def parse_metrics(name: str, body: bytes) -> pa.Table:
    """ts_ms (int64, on the 5-minute grid), sum_open_interest, sum_open_interest_value and the ratios."""
    types = {"create_time": pa.timestamp("s"), "symbol": pa.string(),
             **{c: pa.float64() for c in METRICS_COLUMNS[2:]}}
    raw = read_csv(name, body, METRICS_COLUMNS, types)
    ts = _rounded(pc.multiply(raw["create_time"].cast(pa.int64()), 1000), SNAPSHOT_MS)
    table = pa.table({"ts_ms": ts, **{c: raw[c] for c in METRICS_COLUMNS[2:]}})
    return _dedupe(table.filter(pc.and_(pc.is_valid(table["sum_open_interest"]),
                                        pc.is_valid(table["sum_open_interest_value"]))))


def parse_funding(name: str, body: bytes) -> pa.Table:
    """ts_ms (settlement time, to the minute), interval_minutes, rate."""
    raw = read_csv(name, body, FUNDING_COLUMNS, {"calc_time": pa.int64(), "funding_interval_hours": pa.int64(),
                                                 "last_funding_rate": pa.float64()})
    table = pa.table({"ts_ms": _rounded(raw["calc_time"], 60_000),
                      "interval_minutes": pc.multiply(raw["funding_interval_hours"], 60),
                      "rate": raw["last_funding_rate"]})
    return _dedupe(table)


# -- downloading ------------------------------------------------------------------------------------


async def _get(session: aiohttp.ClientSession, url: str, name: str) -> bytes | None:
    """The body, None for 404 (not published); ArchiveUnreachable for any other answer."""
    async with session.get(url) as resp:
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise ArchiveUnreachable(f"{name}: HTTP {resp.status} from {url}")
        return await resp.read()


async def _one(session: aiohttp.ClientSession, base: str, path: str, start_ms: int, end_ms: int,
               parse, gate: asyncio.Semaphore) -> pa.Table | ArchiveHole:  # noqa: ANN001
    name = path.rsplit("/", 1)[-1]
    async with gate:
        try:
            body = await _get(session, f"{base}/{path}", name)
            if body is None:
                return ArchiveHole(name, start_ms, end_ms, f"{name}: not in the archive (404)", "missing")
            checksum = await _get(session, f"{base}/{path}.CHECKSUM", name + ".CHECKSUM")
            if checksum is None:
                raise ArchiveFileError(f"{name}: its .CHECKSUM is not in the archive (404): cannot verify it")
            return parse(name, verified(name, body, checksum.decode("ascii", "replace")))
        except ArchiveFileError as exc:
            return ArchiveHole(name, start_ms, end_ms, str(exc), "unusable")
        except ArchiveUnreachable as exc:
            return ArchiveHole(name, start_ms, end_ms, str(exc), "unreachable")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return ArchiveHole(name, start_ms, end_ms, f"{name}: download failed ({type(exc).__name__}: {exc})",
                               "unreachable")


async def _chunks(files: list[tuple[str, int, int]], base_url: str, parse, empty: pa.Schema,  # noqa: ANN001
                  lo_ms: int, hi_ms: int) -> AsyncIterator[ArchiveChunk]:
    base = base_url.rstrip("/")
    gate = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(timeout=_TIMEOUT, connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        for i in range(0, len(files), CHUNK_FILES):
            part = files[i:i + CHUNK_FILES]
            got = await asyncio.gather(*(_one(session, base, p, a, b, parse, gate) for p, a, b in part))
            tables = [t for t in got if isinstance(t, pa.Table)]
            table = pa.concat_tables(tables) if tables else empty.empty_table()
            ts = table["ts_ms"]
            table = _dedupe(table.filter(pc.and_(pc.greater_equal(ts, lo_ms), pc.less_equal(ts, hi_ms))))
            holes = [h for h in got if isinstance(h, ArchiveHole)]
            yield ArchiveChunk(table, holes, len(part))


_METRICS_SCHEMA = pa.schema([("ts_ms", pa.int64()), *((c, pa.float64()) for c in METRICS_COLUMNS[2:])])
_FUNDING_SCHEMA = pa.schema([("ts_ms", pa.int64()), ("interval_minutes", pa.int64()), ("rate", pa.float64())])


def metrics_chunks(symbol: str, start_ms: int, end_ms: int, base_url: str = ARCHIVE_URL) -> AsyncIterator[ArchiveChunk]:
    """5-minute snapshots with ts_ms in [start_ms, end_ms], oldest first, a month of days a chunk."""
    first, last = datetime.fromtimestamp(start_ms / 1000, UTC).date(), datetime.fromtimestamp(end_ms / 1000, UTC).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    files = [(metrics_path(symbol, d), max(start_ms, _day_ms(d)), min(end_ms, _day_ms(d) + DAY_MS - 1)) for d in days]
    return _chunks(files, base_url, parse_metrics, _METRICS_SCHEMA, start_ms, end_ms)


def funding_chunks(symbol: str, start_ms: int, end_ms: int, base_url: str = ARCHIVE_URL) -> AsyncIterator[ArchiveChunk]:
    """Settlements with ts_ms in [start_ms, end_ms], oldest first, from the monthly files."""
    first, last = datetime.fromtimestamp(start_ms / 1000, UTC).date(), datetime.fromtimestamp(end_ms / 1000, UTC).date()
    files = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        lo = _day_ms(date(y, m, 1))
        y2, m2 = (y + 1, 1) if m == 12 else (y, m + 1)
        files.append((funding_path(symbol, y, m), max(start_ms, lo), min(end_ms, _day_ms(date(y2, m2, 1)) - 1)))
        y, m = y2, m2
    return _chunks(files, base_url, parse_funding, _FUNDING_SCHEMA, start_ms, end_ms)
