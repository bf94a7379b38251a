"""Binance OI beyond REST's 30 days from the emulated data.binance.vision archive, stitched to REST:
the real `derivs history` process, the emulator process, the catalog loaded by NautilusTrader,
everything compared with what the emulator recorded as served (archive files and REST answers)."""

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from emulator.ground_truth import load_ground_truth
from emulator.history import oi_hole
from emulator.market import Market
from storage.gaps import gaps
from tests.harness import ROOT, read_catalog, start_emulator
from venues.binance.archive import funding_chunks

MS = 1_000_000
STEP_MS = 300_000
DAY_MS = 86_400_000
IID = "BTCUSDT-PERP.BINANCE"


@pytest.fixture()
def emu(tmp_path):
    proc, urls, truth = start_emulator(tmp_path, "binance")
    yield {"url": urls["binance"], "truth": truth, "ready": tmp_path / "emulator.json"}
    proc.terminate()
    proc.wait(10)


def control(url: str, path: str, method: str = "GET") -> dict:
    with urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=10) as r:
        return json.load(r)


def day_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def history_oi(emu, catalog: Path, since: str, *until: str, as_json: bool = True) -> subprocess.CompletedProcess:
    args = ["history", "oi", "BTC", "-v", "binance", "--since", since, *(("--until", until[0]) if until else ()),
            "--emulator", str(emu["ready"]), "--catalog", str(catalog), *(["--json"] if as_json else [])]
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def served_oi(emu) -> dict[str, dict[int, tuple[float, float]]]:
    """ts ms -> (oi, value) served, by source ("archive" files, "history" = REST answers); where
    both served an instant they must agree (the same market model, the same printed strings)."""
    out: dict[str, dict[int, tuple[float, float]]] = {"archive": {}, "history": {}}
    for r in load_ground_truth(emu["truth"]):
        if r["kind"] == "open_interest_history" and r["raw_symbol"] == "BTCUSDT":
            out[r.get("source", "history")][r["ts_ms"]] = (r["open_interest"], r["open_interest_value"])
    both = out["archive"].keys() & out["history"].keys()
    assert all(out["archive"][t] == out["history"][t] for t in both)
    return out


def assert_stored_whole(emu, catalog: Path, start_ms: int, missing_days: set[date], broken_days: set[date] = set()) -> dict:
    """The catalog (read by NautilusTrader) holds every 5-minute bucket from start_ms to the last
    REST bucket, once, with the served values; the only absent buckets are the venue's own lost
    ones and the archive's missing/broken days, each of those recorded as a gap naming its file."""
    loaded = read_catalog(catalog)
    rows = sorted((r[1] // MS, r[3], r[4]) for r in loaded["open_interest"] if r[0] == IID)
    sources = {r[1] // MS: (r[2], r[3]) for r in loaded["open_interest_source"] if r[0] == IID}
    ts = [t for t, _, _ in rows]
    assert ts == sorted(set(ts)) and ts[0] >= start_ms
    served = served_oi(emu)
    rest_first = min(t for t in served["history"] if t >= start_ms)
    archive_ts = [t for t in ts if sources[t][0] == "archive"]
    history_ts = [t for t in ts if sources[t][0] == "history"]
    assert archive_ts and history_ts and max(archive_ts) < min(history_ts) == rest_first  # archive, then REST
    assert {p for _, p in sources.values()} == {300}
    for t, oi, value in rows:
        assert (oi, value) == served[sources[t][0]][t]
    # the seam and everything else: a bucket is absent only where the venue or the archive had none
    now = time.time_ns() // MS
    market, have = Market(7), set(ts)
    lost = {t for t in range(start_ms, ts[-1] + 1, STEP_MS) if t not in have}
    skipped_days = missing_days | broken_days
    assert all(oi_hole(market, "binance", "BTC", t, now) or
               (t < rest_first and datetime.fromtimestamp(t / 1000, UTC).date() in skipped_days) for t in lost)
    assert not any(t - STEP_MS in have and t + STEP_MS in have and not oi_hole(market, "binance", "BTC", t, now)
                   for t in range(rest_first - 12 * STEP_MS, rest_first + 12 * STEP_MS, STEP_MS) if t not in have)
    recorded = {datetime.fromtimestamp(g.start_ns / 1e9, UTC).date(): g.reason
                for g in gaps(catalog, instrument_id=IID, stream="open_interest")}
    assert set(recorded) == {d for d in skipped_days if day_ms(d) >= start_ms and day_ms(d) < rest_first}
    for d, reason in recorded.items():
        assert f"BTCUSDT-metrics-{d.isoformat()}.zip" in reason
    return {"rows": rows, "sources": sources, "gaps": recorded}


def test_oi_months_of_archive_then_rest_stored_whole(emu, tmp_path) -> None:
    today = datetime.now(UTC).date()
    info = control(emu["url"], "/_emulator/archive?symbol=BTCUSDT")
    missing = [date.fromisoformat(d) for d in info["missing_days"]]
    older = [d for d in missing if d < today - timedelta(days=35)]
    since = older[-1] - timedelta(days=3)  # a range with one of the archive's missing days in it
    done = history_oi(emu, tmp_path / "catalog", since.isoformat())
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    result = assert_stored_whole(emu, tmp_path / "catalog", day_ms(since), set(missing))
    assert summary["written"] == summary["fetched"] == len(result["rows"])
    assert all("404" in reason for reason in result["gaps"].values()) and result["gaps"]
    assert f"BTCUSDT-metrics-{older[-1].isoformat()}.zip not published (404)" in done.stdout + done.stderr
    # again: the catalog has it all; only the 404 day is asked again, and REST for what is new since
    again = history_oi(emu, tmp_path / "catalog", since.isoformat())
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["written"] <= 2  # new REST buckets


def test_checksum_mismatch_and_corrupt_zip_are_holes_naming_the_file(emu, tmp_path) -> None:
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=50), today - timedelta(days=41)  # archive only
    missing = {date.fromisoformat(d) for d in control(emu["url"], "/_emulator/archive?symbol=BTCUSDT")["missing_days"]}
    days = [first + timedelta(days=i) for i in range(10) if first + timedelta(days=i) not in missing]
    bad_zip, bad_sum = days[2], days[5]
    control(emu["url"], f"/_emulator/archive/corrupt?file=BTCUSDT-metrics-{bad_zip}.zip&what=zip", "POST")
    control(emu["url"], f"/_emulator/archive/corrupt?file=BTCUSDT-metrics-{bad_sum}.zip&what=checksum", "POST")
    catalog = tmp_path / "catalog"
    done = history_oi(emu, catalog, first.isoformat(), (last + timedelta(days=1)).isoformat(), as_json=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"BTCUSDT-metrics-{bad_zip}.zip: not a readable zip" in done.stderr
    assert f"BTCUSDT-metrics-{bad_sum}.zip: checksum mismatch" in done.stderr
    loaded = read_catalog(catalog)
    stored_days = {datetime.fromtimestamp(r[1] / 1e9, UTC).date() for r in loaded["open_interest"] if r[0] == IID}
    assert stored_days == set(days) - {bad_zip, bad_sum}  # nothing from the bad files, the rest all there
    served = served_oi(emu)["archive"]
    assert all((r[3], r[4]) == served[r[1] // MS] for r in loaded["open_interest"] if r[0] == IID)
    reasons = {datetime.fromtimestamp(g.start_ns / 1e9, UTC).date(): g.reason for g in gaps(catalog, instrument_id=IID)}
    assert "checksum mismatch" in reasons[bad_sum] and "not a readable zip" in reasons[bad_zip]
    # the archive fixed: a rerun fetches the two days, and only what is missing
    for d in (bad_zip, bad_sum):
        control(emu["url"], f"/_emulator/archive/corrupt?file=BTCUSDT-metrics-{d}.zip&clear=1", "POST")
    again = history_oi(emu, catalog, first.isoformat(), (last + timedelta(days=1)).isoformat())
    assert again.returncode == 0, again.stderr
    stored = {datetime.fromtimestamp(r[1] / 1e9, UTC).date() for r in read_catalog(catalog)["open_interest"] if r[0] == IID}
    assert stored == set(days)


def test_archive_files_have_the_real_layout_and_funding_equals_rest(emu) -> None:
    import hashlib
    import io
    import re
    import zipfile

    real = json.loads((Path(__file__).parents[1] / "fixtures/real/binance/archive_files.json").read_text())
    day = datetime.now(UTC).date() - timedelta(days=40)
    missing = control(emu["url"], "/_emulator/archive?symbol=BTCUSDT")["missing_days"]
    while day.isoformat() in missing:
        day -= timedelta(days=1)
    for path, sample in ((f"daily/metrics/BTCUSDT/BTCUSDT-metrics-{day}.zip", real["metrics_csv"]),
                         (f"monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-{day:%Y-%m}.zip", real["funding_csv"])):
        name = path.rsplit("/", 1)[-1]
        with urllib.request.urlopen(f"{emu['url']}/data/futures/um/{path}", timeout=30) as r:
            body = r.read()
        with urllib.request.urlopen(f"{emu['url']}/data/futures/um/{path}.CHECKSUM", timeout=30) as r:
            assert r.read().decode() == f"{hashlib.sha256(body).hexdigest()}  {name}\n"
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            assert z.namelist() == [name.removesuffix(".zip") + ".csv"]
            lines = z.read(z.namelist()[0]).decode().splitlines()
        real_lines = sample.splitlines()
        assert lines[0] == real_lines[0]  # the same header
        shape = lambda line: re.sub(r"\d", "9", line.split(",")[0]).count("9")  # noqa: E731 - digits of the time field
        assert {shape(x) for x in lines[1:]} == {shape(x) for x in real_lines[1:]}  # the same time format
        assert {len(x.split(",")) for x in lines} == {len(real_lines[0].split(","))}
    today = datetime.now(UTC).date().replace(day=1)
    lo = day_ms((today - timedelta(days=100)).replace(day=1))
    hi = day_ms(today) - 1

    async def archive() -> list:
        return [c async for c in funding_chunks("BTCUSDT", lo, hi, emu["url"])]

    chunks = asyncio.run(archive())
    rows = [r for c in chunks for r in c.table.to_pylist()]
    assert not [h for c in chunks for h in c.holes] and len(rows) > 250
    url = f"{emu['url']}/fapi/v1/fundingRate?symbol=BTCUSDT&startTime={lo}&endTime={hi}&limit=1000"
    with urllib.request.urlopen(url, timeout=10) as r:
        rest = json.load(r)
    assert [(r["ts_ms"], r["rate"]) for r in rows] == [(x["fundingTime"], float(x["fundingRate"])) for x in rest]
    assert {r["interval_minutes"] for r in rows} == {480}


@pytest.mark.slow
def test_oi_from_2022_stored_whole(emu, tmp_path) -> None:
    """About five years of 5-minute buckets (~520,000 rows) from the archive, then REST."""
    info = control(emu["url"], "/_emulator/archive?symbol=BTCUSDT")
    started = time.monotonic()
    done = history_oi(emu, tmp_path / "catalog", "2022-01-01")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    result = assert_stored_whole(emu, tmp_path / "catalog", day_ms(date(2022, 1, 1)),
                                 {date.fromisoformat(d) for d in info["missing_days"]})
    assert len(result["rows"]) > 500_000
    print(f"2022-01-01..now: {len(result['rows'])} rows in {took:.1f} s")


def test_archive_rows_and_gaps_go_through_a_running_mesh(emu, tmp_path) -> None:
    from storage.coverage import read_table
    from storage.lock import running_writer
    from tests.harness import start_mesh, stop_mesh, wait_for, write_topology

    topology = write_topology(tmp_path, venues={"binance": ["BTC/USDT:USDT"]}, oi_s=5.0, funding_s=30.0, flush_s=1.0,
                              sandbox={"start_emulator": False, "emulator_file": str(emu["ready"])})
    catalog = tmp_path / "catalog"
    today = datetime.now(UTC).date()
    first = today - timedelta(days=45)
    bad = first + timedelta(days=1)
    control(emu["url"], f"/_emulator/archive/corrupt?file=BTCUSDT-metrics-{bad}.zip&what=checksum", "POST")
    proc = start_mesh(topology, "--sandbox")
    try:
        wait_for(lambda: running_writer(catalog), 30, what="the mesh's writer holding the catalog lock")
        done = subprocess.run([sys.executable, "-m", "cli", "history", "oi", "BTC", "-v", "binance", "--since",
                               first.isoformat(), "--until", (first + timedelta(days=4)).isoformat(), "--topology",
                               str(topology), "--emulator", str(emu["ready"]), "--json"],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert done.returncode == 1 and summary["via"] == "mesh" and f"BTCUSDT-metrics-{bad}.zip" in summary["error"]
        lo, hi = day_ms(first) * MS, day_ms(first + timedelta(days=4)) * MS - 1
        wait_for(lambda: read_table(catalog, "oi", IID, lo, hi, source="archive").num_rows == summary["written"] > 800, 30,
                 what="the archive rows in the catalog")
        wait_for(lambda: [g for g in gaps(catalog, instrument_id=IID) if f"BTCUSDT-metrics-{bad}.zip" in g.reason], 30,
                 what="the bad file's gap in the catalog")
        assert "cli.history" not in (tmp_path / "run" / "logs" / "validator.log").read_text()  # nothing refused
    finally:
        stop_mesh(proc)
    stored = read_table(catalog, "oi", IID, lo, hi, source="archive")
    days = {datetime.fromtimestamp(t / 1e9, UTC).date() for t in stored["ts_init"].to_pylist()}
    assert bad not in days and len(days) >= 2


def test_before_the_archive_begins_is_a_note_not_gaps_and_the_doubled_era_is_stored_once(emu, tmp_path) -> None:
    """BTCUSDT's archive starts 2020-09-01 (listed 2019-09); its first months carry every row twice."""
    done = history_oi(emu, tmp_path / "catalog", "2020-08-25", "2020-09-04")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert any(n.startswith("archive: no BTCUSDT file before 2020-09-01 00:00:00: 2020-08-25 00:00:00..2020-08-31 23:59:59")
               for n in summary["notes"]), summary["notes"]
    assert not gaps(tmp_path / "catalog", instrument_id=IID)
    loaded = read_catalog(tmp_path / "catalog")
    ts = [r[1] // MS for r in loaded["open_interest"] if r[0] == IID]
    served = served_oi(emu)["archive"]
    assert ts == sorted(set(ts)) == sorted(served) and ts[0] == day_ms(date(2020, 9, 1))
    assert all((r[3], r[4]) == served[r[1] // MS] for r in loaded["open_interest"] if r[0] == IID)
    assert summary["written"] == len(ts) > 800


def test_a_file_not_downloaded_is_unreachable_not_a_hole_of_the_archive(emu) -> None:
    from venues.binance.archive import metrics_chunks

    first = datetime.now(UTC).date() - timedelta(days=60)
    missing = set(control(emu["url"], "/_emulator/archive?symbol=BTCUSDT")["missing_days"])
    control(emu["url"], "/_emulator/fault?mode=maintenance&count=1", "POST")  # the next answer: HTTP 503

    async def fetch() -> list:
        return [c async for c in metrics_chunks("BTCUSDT", day_ms(first), day_ms(first + timedelta(days=4)) - 1, emu["url"])]

    chunks = asyncio.run(fetch())
    holes = [h for c in chunks for h in c.holes]
    unreachable = [h for h in holes if h.kind == "unreachable"]
    assert len(unreachable) == 1 and "HTTP 503" in unreachable[0].reason
    assert {h.kind for h in holes} <= {"unreachable", "missing"}
    days = {datetime.fromtimestamp(t / 1000, UTC).date() for c in chunks for t in c.table["ts_ms"].to_pylist()}
    expected = {first + timedelta(days=i) for i in range(4)} - {date.fromisoformat(d) for d in missing}
    assert days == expected - {datetime.fromtimestamp(unreachable[0].start_ms / 1000, UTC).date()}
