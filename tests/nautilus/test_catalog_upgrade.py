"""A catalog written before issue 15 (no `source`/`period_s` on OI rows, no annualized / 8-hour
funding figures, settled funding in `FundingRateUpdate` + `FundingRateInfo` with `settled=True`):
what a user sees reading it as it is, and after a writer opened it (`storage/upgrade.py`).

The old files are written here in the layout the writer had before (columns as in git history of
`storage/schema.py`), with the names the writer gave them.
"""

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import files as cf
from storage.coverage import coverage, query
from storage.schema import FUNDING_RATE_INFO, FUNDING_RATE_UPDATE, FUNDING_SETTLEMENT, OPEN_INTEREST, rate_json
from storage.store import CatalogStore
from storage.upgrade import LAYOUT_FILE, _move_settlements, layout
from messages.events import FundingRate, OpenInterest

REPO = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
MIN = 60 * NS
HOUR = 60 * MIN
T0 = 1_793_491_200 * NS  # 2026-11-01T00:00Z
IID = "BTCUSDT-PERP.BINANCE"

OLD_OI = pa.schema([("instrument_id", pa.string()), ("open_interest", pa.float64()), ("open_interest_value", pa.float64()),
                    ("type", pa.string()), ("ts_event", pa.uint64()), ("ts_init", pa.uint64())])
OLD_INFO = pa.schema([("instrument_id", pa.string()), ("rate", pa.float64()), ("interval_minutes", pa.int64()),
                      ("next_funding_ns", pa.int64()), ("predicted_rate", pa.float64()), ("mark_price", pa.float64()),
                      ("index_price", pa.float64()), ("settled", pa.bool_()), ("type", pa.string()),
                      ("ts_event", pa.uint64()), ("ts_init", pa.uint64())])
OLD_UPDATE = pa.schema([pa.field("rate", pa.binary(), nullable=False), ("interval", pa.uint16()),
                        ("next_funding_ns", pa.uint64()), pa.field("ts_event", pa.uint64(), nullable=False),
                        pa.field("ts_init", pa.uint64(), nullable=False)], metadata={"instrument_id": IID})

HISTORY_TS = [T0 + k * 5 * MIN for k in range(12)]  # 5-minute history buckets
POLL_TS = [T0 + 17 * NS + k * 10 * NS for k in range(30)]  # the collector's polls (venue clock)
# (ts, rate, settled, mark): three settlements (one alone in a later file), live estimates between
FUNDING = [(T0, 0.0001, True, 97_000.5), *[(T0 + NS + k * MIN, 0.00011 + k * 1e-6, False, 97_001.0) for k in range(6)],
           (T0 + 8 * HOUR, -0.00005, True, float("nan")), (T0 + 8 * HOUR + 30 * NS, -0.00004, False, 97_002.0)]
LATE_SETTLEMENT = (T0 + 16 * HOUR, 0.0003, True, 97_100.0)  # the only row of its file


def _write(directory: Path, table: pa.Table) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ts = table["ts_init"].to_pylist()
    pq.write_table(table, directory / cf.file_name(ts[0], ts[-1]))


def _old_funding_files(root: Path, rows: list[tuple]) -> None:
    ts = [r[0] for r in rows]
    n = len(rows)
    _write(root / "data" / FUNDING_RATE_INFO / IID, pa.table({
        "instrument_id": [IID] * n, "rate": [r[1] for r in rows], "interval_minutes": [480] * n,
        "next_funding_ns": [0 if r[2] else T0 + 8 * HOUR for r in rows], "predicted_rate": [float("nan")] * n,
        "mark_price": [r[3] for r in rows], "index_price": [float("nan")] * n, "settled": [r[2] for r in rows],
        "type": ["FundingRateInfo"] * n, "ts_event": ts, "ts_init": ts}, schema=OLD_INFO))
    _write(root / "data" / FUNDING_RATE_UPDATE / IID, pa.table({
        "rate": [rate_json(r[1]) for r in rows], "interval": [480] * n,
        "next_funding_ns": [None if r[2] else T0 + 8 * HOUR for r in rows], "ts_event": ts, "ts_init": ts},
        schema=OLD_UPDATE))


def old_catalog(root: Path) -> Path:
    ts = sorted(HISTORY_TS + POLL_TS)
    _write(root / "data" / OPEN_INTEREST / IID, pa.table({
        "instrument_id": [IID] * len(ts), "open_interest": [1000.0 + i for i in range(len(ts))],
        "open_interest_value": [(1000.0 + i) * 97_000 for i in range(len(ts))], "type": ["OpenInterest"] * len(ts),
        "ts_event": ts, "ts_init": ts}, schema=OLD_OI))
    _old_funding_files(root, FUNDING)
    _old_funding_files(root, [LATE_SETTLEMENT])
    return root


SETTLED = [r for r in [*FUNDING, LATE_SETTLEMENT] if r[2]]
LIVE = [r for r in FUNDING if not r[2]]


def nan_to_none(x: float) -> float | None:
    return None if x != x else x


_NAUTILUS = r"""
import json, math, sys
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import FundingRateInfo, FundingSettlement, OpenInterest, query_funding_rates
cat = ParquetDataCatalog(sys.argv[1])
nan = lambda x: None if isinstance(x, float) and math.isnan(x) else x
print(json.dumps({
  "oi": [[r.data.ts_init, r.data.source, r.data.period_s] for r in cat.query(OpenInterest)],
  "info": [[r.data.ts_init, r.data.rate, r.data.rate_annualized, r.data.rate_8h, nan(r.data.predicted_rate_8h), r.data.settled]
           for r in cat.query(FundingRateInfo)],
  "settlements": [[r.data.ts_init, r.data.rate, r.data.rate_annualized, r.data.rate_8h, nan(r.data.mark_price)]
                  for r in cat.query(FundingSettlement)],
  "updates": [[u.ts_init, str(u.rate)] for u in query_funding_rates(cat)],
}))
"""


def nautilus_reads(root: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _NAUTILUS, str(root)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def yearly(rate: float) -> float:  # 8-hour rates: 3 a day, 365 days
    return rate * (365 * 24 * 60) / 480


def test_an_older_catalog_reads_as_it_is_with_the_new_columns_derived(tmp_path):
    root = old_catalog(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}
    # storage.coverage / storage.series (what `derivs query` and `coverage` read)
    oi = query(root, "oi", IID)
    assert [(r["ts_event"], r["source"], r["period_s"]) for r in oi] == sorted(
        [(t, "history", -1) for t in HISTORY_TS] + [(t, "poll", 0) for t in POLL_TS])
    assert [r["ts_event"] for r in query(root, "oi", IID, source="history")] == HISTORY_TS
    settled = query(root, "funding", IID, source="settled")
    assert [(r["ts_event"], r["rate"], r["rate_annualized"], r["rate_8h"]) for r in settled] == [
        (t, rate, yearly(rate), rate) for t, rate, _, _ in SETTLED]
    assert [r["ts_event"] for r in query(root, "funding", IID, source="live")] == [r[0] for r in LIVE]
    assert {(c.kind, c.source): c.rows for c in coverage(root)} == {
        ("oi", "history"): 12, ("oi", "poll"): 30, ("funding", "settled"): 3, ("funding", "live"): 7}
    # NautilusTrader: the same derived figures; the settlements are still where they were
    got = nautilus_reads(root)
    assert sorted(got["oi"]) == sorted([[t, "history", -1] for t in HISTORY_TS] + [[t, "poll", 0] for t in POLL_TS])
    assert got["info"] == [[t, rate, yearly(rate), rate, None, settled] for t, rate, settled, _ in sorted([*FUNDING, LATE_SETTLEMENT])]
    assert got["settlements"] == []
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} == before  # reading writes nothing


def upgraded_state(root: Path) -> dict:
    """Every data file's name and rows, by directory."""
    out = {}
    for kind in (OPEN_INTEREST, FUNDING_RATE_INFO, FUNDING_RATE_UPDATE, FUNDING_SETTLEMENT):
        files = cf.list_files(root / "data" / kind / IID)
        assert cf.intervals_disjoint(files)
        for f in files:
            table = pq.read_table(f.path)
            ts = table["ts_init"].to_pylist()
            assert Path(f.path).name == cf.file_name(ts[0], ts[-1])  # names say the rows' interval
        out[kind] = ([Path(f.path).name for f in files],
                     [{k: nan_to_none(v) if isinstance(v, float) else v for k, v in row.items()}
                      for f in files for row in pq.read_table(f.path).to_pylist()])
    return out


def test_a_writer_upgrades_an_older_catalog_once(tmp_path):
    root = old_catalog(tmp_path)
    CatalogStore(root, durable=False)
    state = upgraded_state(root)
    names, settlements = state[FUNDING_SETTLEMENT]
    assert [(r["ts_init"], r["rate"], r["interval_minutes"], r["rate_annualized"], r["rate_8h"], r["mark_price"])
            for r in settlements] == [(t, rate, 480, yearly(rate), rate, nan_to_none(mark)) for t, rate, _, mark in SETTLED]
    live_ts = [r[0] for r in LIVE]
    assert [r["ts_init"] for r in state[FUNDING_RATE_INFO][1]] == live_ts
    assert all(r["settled"] is False and r["rate_8h"] == r["rate"] for r in state[FUNDING_RATE_INFO][1])
    assert [r["ts_init"] for r in state[FUNDING_RATE_UPDATE][1]] == live_ts
    assert len(state[FUNDING_RATE_UPDATE][0]) == 1  # the file that held only a settlement is gone
    assert pq.read_schema(root / "data" / FUNDING_RATE_UPDATE / IID / state[FUNDING_RATE_UPDATE][0][0]).metadata == {
        b"instrument_id": IID.encode()}
    oi = state[OPEN_INTEREST][1]
    assert [(r["ts_init"], r["source"], r["period_s"]) for r in oi] == sorted(
        [(t, "history", -1) for t in HISTORY_TS] + [(t, "poll", 0) for t in POLL_TS])

    # a second writer start changes nothing, and does not even look (the layout is recorded)
    assert layout(root) == 2
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}
    CatalogStore(root, durable=False)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} == before
    (root / LAYOUT_FILE).unlink()  # and if it looks, it finds nothing to do
    CatalogStore(root, durable=False)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} == before

    # new rows next to the upgraded ones; NautilusTrader reads one consistent catalog
    new = [OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id=IID, ts_event=t, ts_recv=t,
                        open_interest=5.0, open_interest_value=6.0, source="history", period_s=300)
           for t in (T0 + 60 * MIN, T0 + 65 * MIN)]
    new += [FundingRate(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id=IID, ts_event=T0 + 24 * HOUR,
                        ts_recv=T0 + 24 * HOUR, rate=0.0002, interval_minutes=480, settled=True),
            FundingRate(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id=IID, ts_event=T0 + 9 * HOUR,
                        ts_recv=T0 + 9 * HOUR, rate=0.00007, interval_minutes=480, predicted_rate=0.00008)]
    CatalogStore(root, durable=False).write(new)
    got = nautilus_reads(root)
    assert sorted(got["oi"]) == sorted([[t, "history", -1] for t in HISTORY_TS] + [[t, "poll", 0] for t in POLL_TS]
                                       + [[T0 + 60 * MIN, "history", 300], [T0 + 65 * MIN, "history", 300]])
    assert [s[:4] for s in got["settlements"]] == [[t, rate, yearly(rate), rate] for t, rate, _, _ in
                                                   [*SETTLED, (T0 + 24 * HOUR, 0.0002, True, 0)]]
    assert [u[0] for u in got["updates"]] == [*live_ts, T0 + 9 * HOUR]
    assert [Decimal(u[1]) for u in got["updates"]] == [Decimal(repr(r[1])) for r in LIVE] + [Decimal("0.00007")]
    assert got["info"][-1] == [T0 + 9 * HOUR, 0.00007, yearly(0.00007), 0.00007, 0.00008, False]
    assert all(not settled for *_, settled in got["info"])


def test_an_interrupted_upgrade_is_finished_by_the_next_writer(tmp_path):
    """Crash after the settlements were stored and `funding_rate_update` rewritten, before the
    `custom_funding_rate_info` file was: the next start ends where an uninterrupted one does."""
    clean = old_catalog(tmp_path / "clean")
    CatalogStore(clean, durable=False)
    crashed = old_catalog(tmp_path / "crashed")
    info_dir = crashed / "data" / FUNDING_RATE_INFO / IID
    first = cf.list_files(info_dir)[0]
    table = pq.read_table(first.path)
    _move_settlements(crashed / "data", IID, table.filter(table["settled"]).append_column(
        "rate_annualized", pa.array([yearly(r) for r in table.filter(table["settled"])["rate"].to_pylist()])).append_column(
        "rate_8h", table.filter(table["settled"])["rate"]), durable=False)
    (info_dir / f".{Path(first.path).name}.tmp").write_bytes(b"half a file")  # the rewrite it was in
    CatalogStore(crashed, durable=False)
    assert not [p for p in crashed.rglob(".*") if p.is_file() and p.name != LAYOUT_FILE]  # no stray temp file
    assert upgraded_state(crashed) == upgraded_state(clean)


def test_upgrade_command(tmp_path):
    root = old_catalog(tmp_path)
    done = subprocess.run([sys.executable, "-m", "storage.upgrade", str(root)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3 files upgraded, 3 settled funding rows moved to custom_funding_settlement"
    again = subprocess.run([sys.executable, "-m", "storage.upgrade", str(root)], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert again.stdout.strip() == "0 files upgraded, 0 settled funding rows moved to custom_funding_settlement"
    missing = subprocess.run([sys.executable, "-m", "storage.upgrade", str(tmp_path / "nope")], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "a directory with data/ in it" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("kind", [OPEN_INTEREST, FUNDING_RATE_INFO])
@pytest.mark.parametrize("content", ["foreign", "garbage"])
def test_a_file_that_cannot_be_upgraded_stops_nothing(tmp_path, kind, content):
    """A foreign or unreadable file is left to the writer's set-aside (when it writes there)."""
    root = old_catalog(tmp_path / "c")
    d = root / "data" / kind / IID
    bad = d / cf.file_name(T0 - HOUR, T0 - HOUR)
    if content == "foreign":
        pq.write_table(pa.table({"x": [1], "ts_init": pa.array([T0 - HOUR], pa.uint64())}), bad)
    else:
        bad.write_bytes(b"not parquet at all")
    store = CatalogStore(root, durable=False)  # the other files are upgraded all the same
    assert layout(root) == 1  # not recorded as done: the next open looks again
    assert sum(pq.read_metadata(p).num_rows for p in (root / "data" / FUNDING_SETTLEMENT / IID).glob("*.parquet")) == 3
    assert pq.read_schema(cf.list_files(root / "data" / OPEN_INTEREST / IID)[-1].path).names[3:5] == ["source", "period_s"]
    event = (OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id=IID, ts_event=T0 - HOUR,
                          ts_recv=T0, open_interest=1.0, open_interest_value=2.0) if kind == OPEN_INTEREST else
             FundingRate(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id=IID, ts_event=T0 - HOUR, ts_recv=T0,
                         rate=0.0001, interval_minutes=480))
    store.write([event])
    [aside] = (root / "quarantine" / kind / IID).iterdir()  # set aside by the write, as before
    assert aside.name.endswith(bad.name)
    assert pq.read_table(bad)["ts_init"].to_pylist() == [T0 - HOUR]  # the new row, in a file of its own
