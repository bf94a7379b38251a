"""The catalog writer without Nautilus: conversions, file names, merging, idempotence, recovery.

`tests/nautilus/test_catalog_loads.py` proves the same files load through `ParquetDataCatalog`.
"""

import errno
import math
import os
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import files as cf
from storage.schema import (
    CRYPTO_PERPETUAL,
    FUNDING_RATE_INFO,
    FUNDING_RATE_INFO_SCHEMA,
    FUNDING_RATE_UPDATE,
    FUNDING_SETTLEMENT,
    FUNDING_SETTLEMENT_SCHEMA,
    OPEN_INTEREST,
    OPEN_INTEREST_SCHEMA,
    crypto_perpetual_row,
    rate_json,
)
from storage.batches import build_tables
from storage.store import CatalogStore
from messages.events import FundingRate, Instrument, OpenInterest

T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
MIN = 60 * 1_000_000_000
BTC = "BTCUSDT-PERP.BINANCE"
ETH = "ETHUSDT-LINEAR.BYBIT"


def oi(ts: int, value: float = 1.0, instrument_id: str = BTC) -> OpenInterest:
    return OpenInterest(
        venue="BINANCE",
        symbol="BTC/USDT:USDT",
        instrument_id=instrument_id,
        ts_event=ts,
        ts_recv=ts + 5,
        open_interest=value,
        open_interest_value=value * 100_000.0,
    )


def funding(ts: int, rate: float = 0.0001, **kw) -> FundingRate:
    return FundingRate(
        venue="BINANCE",
        symbol="BTC/USDT:USDT",
        instrument_id=kw.pop("instrument_id", BTC),
        ts_event=ts,
        ts_recv=ts,
        rate=rate,
        interval_minutes=480,
        **kw,
    )


def instrument(ts: int, **kw) -> Instrument:
    fields = dict(
        venue="BINANCE",
        symbol="BTC/USDT:USDT",
        instrument_id=BTC,
        ts_event=ts,
        ts_recv=ts,
        raw_symbol="BTCUSDT",
        base="BTC",
        quote="USDT",
        settle="USDT",
        price_precision=2,
        size_precision=3,
        price_increment="0.10",
        size_increment="0.001",
        min_quantity="0.001",
        max_quantity="1000.000",
        min_notional="5",
        margin_init="1",
        margin_maint="1",
        maker_fee="0.000200",
        taker_fee="0.000500",
        max_leverage=125.0,
    )
    return Instrument(**fields | kw)


def names(store: CatalogStore, kind: str, instrument_id: str = BTC) -> list[str]:
    return [p.name for p in store.files(kind, instrument_id)]


def stored(store: CatalogStore, kind: str, instrument_id: str = BTC) -> pa.Table:
    files = cf.list_files(store.directory(kind, instrument_id))
    return pa.concat_tables([pq.read_table(f.path) for f in files])


def everything(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- pure conversions ---------------------------------------------------------------------------


def test_file_names_round_trip_in_nautilus_format():
    assert cf.file_timestamp(1_700_000_000_123_456_789) == "2023-11-14T22-13-20-123456789Z"
    assert cf.file_timestamp(T0) == "2025-01-01T00-00-00-000000000Z"
    name = cf.file_name(T0, T0 + 1)
    assert name == "2025-01-01T00-00-00-000000000Z_2025-01-01T00-00-00-000000001Z.parquet"
    assert cf.parse_file_name(name) == (T0, T0 + 1)
    for ts in (0, 951_782_400_123_000_000, 4_102_444_799_999_999_999):  # epoch, 2000-02-29, 2099
        assert cf.parse_file_timestamp(cf.file_timestamp(ts)) == ts


@pytest.mark.parametrize("name", [f".{cf.file_name(T0, T0)}.tmp", f".{cf.file_name(T0, T0)}.commit", f".{cf.file_name(T0, T0)}", "x.parquet", "a_b.parquet"])
def test_non_data_file_names_are_not_data(name):
    assert cf.parse_file_name(name) is None


def test_rate_is_stored_as_nautilus_json_decimal():
    assert rate_json(0.0001) == b'"0.0001"'
    assert rate_json(1e-05) == b'"0.00001"'
    assert rate_json(-0.00012345) == b'"-0.00012345"'
    assert rate_json(0.0) == b'"0.0"'


def test_build_tables_groups_sorts_and_keeps_the_last_duplicate():
    events = [oi(T0 + MIN, 2.0), oi(T0, 1.0), oi(T0 + MIN, 3.0), oi(T0, 9.0, ETH), funding(T0)]
    tables = build_tables(events)
    assert set(tables) == {
        (OPEN_INTEREST, BTC),
        (OPEN_INTEREST, ETH),
        (FUNDING_RATE_UPDATE, BTC),
        (FUNDING_RATE_INFO, BTC),
    }
    btc = tables[(OPEN_INTEREST, BTC)]
    assert btc.schema == OPEN_INTEREST_SCHEMA
    assert btc.to_pylist() == [
        {"instrument_id": BTC, "open_interest": 1.0, "open_interest_value": 100_000.0, "source": "poll", "period_s": 0,
         "type": "OpenInterest", "ts_event": T0, "ts_init": T0},
        {"instrument_id": BTC, "open_interest": 3.0, "open_interest_value": 300_000.0, "source": "poll", "period_s": 0,
         "type": "OpenInterest", "ts_event": T0 + MIN, "ts_init": T0 + MIN},
    ]


def test_live_funding_becomes_a_nautilus_row_and_an_info_row():
    events = [
        funding(T0, 0.0001),
        funding(T0 + MIN, -0.0002, next_funding_ns=T0 + 480 * MIN, predicted_rate=0.0003, mark_price=50_000.5, index_price=50_001.0),
    ]
    tables = build_tables(events)
    assert set(tables) == {(FUNDING_RATE_UPDATE, BTC), (FUNDING_RATE_INFO, BTC)}
    update = tables[(FUNDING_RATE_UPDATE, BTC)]
    assert update.schema.metadata == {b"instrument_id": BTC.encode()}
    assert [(f.name, str(f.type), f.nullable) for f in update.schema] == [
        ("rate", "binary", False),
        ("interval", "uint16", True),
        ("next_funding_ns", "uint64", True),
        ("ts_event", "uint64", False),
        ("ts_init", "uint64", False),
    ]
    assert update.to_pylist() == [
        {"rate": b'"0.0001"', "interval": 480, "next_funding_ns": None, "ts_event": T0, "ts_init": T0},
        {"rate": b'"-0.0002"', "interval": 480, "next_funding_ns": T0 + 480 * MIN, "ts_event": T0 + MIN, "ts_init": T0 + MIN},
    ]
    info = tables[(FUNDING_RATE_INFO, BTC)]
    assert info.schema == FUNDING_RATE_INFO_SCHEMA
    first, second = info.to_pylist()
    assert first["next_funding_ns"] == 0 and first["settled"] is False
    assert (first["rate_annualized"], first["rate_8h"]) == (pytest.approx(0.1095), pytest.approx(0.0001))
    assert all(math.isnan(first[k]) for k in ("predicted_rate", "predicted_rate_annualized", "predicted_rate_8h",
                                              "mark_price", "index_price"))
    assert second == {
        "instrument_id": BTC,
        "rate": -0.0002,
        "interval_minutes": 480,
        "rate_annualized": pytest.approx(-0.2190),  # 3 fundings a day, 365 days
        "rate_8h": -0.0002,
        "next_funding_ns": T0 + 480 * MIN,
        "predicted_rate": 0.0003,
        "predicted_rate_annualized": pytest.approx(0.3285),
        "predicted_rate_8h": 0.0003,
        "mark_price": 50_000.5,
        "index_price": 50_001.0,
        "settled": False,
        "type": "FundingRateInfo",
        "ts_event": T0 + MIN,
        "ts_init": T0 + MIN,
    }


def test_settled_funding_becomes_a_settlement_row_only():
    """A settlement and a live estimate of the same instant are two rows in two series."""
    hourly = FundingRate(venue="HYPERLIQUID", symbol="BTC/USDC:USDC", instrument_id="BTC-USD-PERP.HYPERLIQUID",
                         ts_event=T0, ts_recv=T0, rate=0.0000125, interval_minutes=60, settled=True)
    tables = build_tables([funding(T0, 0.0001, settled=True, mark_price=50_000.5), funding(T0, 0.0003), hourly])
    assert set(tables) == {(FUNDING_SETTLEMENT, BTC), (FUNDING_RATE_UPDATE, BTC), (FUNDING_RATE_INFO, BTC),
                           (FUNDING_SETTLEMENT, "BTC-USD-PERP.HYPERLIQUID")}
    settlement = tables[(FUNDING_SETTLEMENT, BTC)]
    assert settlement.schema == FUNDING_SETTLEMENT_SCHEMA
    assert settlement.to_pylist() == [{
        "instrument_id": BTC, "rate": 0.0001, "interval_minutes": 480, "rate_annualized": pytest.approx(0.1095),
        "rate_8h": 0.0001, "mark_price": 50_000.5, "type": "FundingSettlement", "ts_event": T0, "ts_init": T0,
    }]
    [hl] = tables[(FUNDING_SETTLEMENT, "BTC-USD-PERP.HYPERLIQUID")].to_pylist()
    assert (hl["rate_8h"], hl["rate_annualized"]) == (pytest.approx(0.0001), pytest.approx(0.1095))  # 1 h x 8, x 8,760
    assert math.isnan(hl["mark_price"])
    assert tables[(FUNDING_RATE_INFO, BTC)]["rate"].to_pylist() == [0.0003]
    assert tables[(FUNDING_RATE_UPDATE, BTC)]["rate"].to_pylist() == [b'"0.0003"']


def test_instrument_row_keeps_values_as_the_venue_module_wrote_them():
    """The venue module already wrote every value as Nautilus prints it: the row changes nothing."""
    row = crypto_perpetual_row(instrument(T0, max_price="1246396.60", min_price="402.00"))
    assert row["price_increment"] == "0.10" and row["price_precision"] == 2  # not re-scaled to "0.1"
    assert (row["size_increment"], row["lot_size"], row["multiplier"]) == ("0.001", "1", "1")
    assert row["max_quantity"] == "1000.000" and row["min_quantity"] == "0.001"
    assert (row["max_price"], row["min_price"]) == ("1246396.60", "402.00")
    assert row["min_notional"] == "5 USDT" and row["max_notional"] is None
    assert (row["margin_init"], row["margin_maint"]) == ("1", "1")
    assert row["maker_fee"] == "0.000200" and row["taker_fee"] == "0.000500"
    assert row["info"] == b'{"symbol":"BTC/USDT:USDT","max_leverage":125.0}'
    assert row["is_inverse"] is False
    assert row["ts_event"] == row["ts_init"] == T0


def test_merge_tables_counts_new_and_changed_rows_only():
    old = build_tables([oi(T0, 1.0), oi(T0 + MIN, 2.0)])[(OPEN_INTEREST, BTC)]
    same, changed = cf.merge_tables(old, old)
    assert changed == 0 and same is old
    new = build_tables([oi(T0 + MIN, 5.0), oi(T0 + 2 * MIN, 3.0)])[(OPEN_INTEREST, BTC)]
    merged, changed = cf.merge_tables(old, new)
    assert changed == 2
    assert merged["open_interest"].to_pylist() == [1.0, 5.0, 3.0]
    # NaN and null compare equal to themselves
    info = build_tables([funding(T0)])[(FUNDING_RATE_INFO, BTC)]
    assert cf.merge_tables(info, info)[1] == 0
    update = build_tables([funding(T0)])[(FUNDING_RATE_UPDATE, BTC)]
    assert cf.merge_tables(update, update)[1] == 0


# -- the store on disk --------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> CatalogStore:
    return CatalogStore(tmp_path / "catalog", durable=False)


def test_write_creates_one_file_per_kind_and_instrument(store):
    counts = store.write([oi(T0 + i * MIN, i) for i in range(5)] + [funding(T0), instrument(T0), oi(T0, 1.0, ETH)])
    assert counts == {
        f"{OPEN_INTEREST}/{BTC}": 5,
        f"{OPEN_INTEREST}/{ETH}": 1,
        f"{FUNDING_RATE_UPDATE}/{BTC}": 1,
        f"{FUNDING_RATE_INFO}/{BTC}": 1,
        f"{CRYPTO_PERPETUAL}/{BTC}": 1,
    }
    assert names(store, OPEN_INTEREST) == [cf.file_name(T0, T0 + 4 * MIN)]
    assert store.last_ts_ns(OPEN_INTEREST, BTC) == T0 + 4 * MIN
    assert store.last_ts_ns(OPEN_INTEREST, "NOPE.BINANCE") is None
    assert everything(store.root) == sorted(
        f"data/{kind}/{iid}/{cf.file_name(ts0, ts1)}"
        for kind, iid, ts0, ts1 in [
            (OPEN_INTEREST, BTC, T0, T0 + 4 * MIN),
            (OPEN_INTEREST, ETH, T0, T0),
            (FUNDING_RATE_UPDATE, BTC, T0, T0),
            (FUNDING_RATE_INFO, BTC, T0, T0),
            (CRYPTO_PERPETUAL, BTC, T0, T0),
        ]
    )


def test_rewriting_the_same_events_adds_nothing_and_touches_no_file(store):
    events = [oi(T0 + i * MIN, i) for i in range(5)] + [funding(T0 + i * MIN) for i in range(3)] + [instrument(T0)]
    store.write(events)
    before = {p: p.stat().st_mtime_ns for p in store.root.rglob("*.parquet")}
    assert set(store.write(events).values()) == {0}
    assert set(store.write(events[2:4]).values()) == {0}  # a subset, inside one file
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*.parquet")} == before


def test_disjoint_write_adds_a_file(store):
    store.write([oi(T0), oi(T0 + MIN)])
    assert store.write([oi(T0 + 10 * MIN), oi(T0 + 11 * MIN)]) == {f"{OPEN_INTEREST}/{BTC}": 2}
    assert names(store, OPEN_INTEREST) == [cf.file_name(T0, T0 + MIN), cf.file_name(T0 + 10 * MIN, T0 + 11 * MIN)]


def test_overlapping_write_merges_into_one_file_and_new_rows_win(store):
    store.write([oi(T0, 1.0), oi(T0 + 2 * MIN, 2.0)])
    store.write([oi(T0 + 10 * MIN, 3.0), oi(T0 + 12 * MIN, 4.0)])
    store.write([oi(T0 + 20 * MIN, 5.0)])
    # a late row inside the first file, a corrected row, and rows spanning the first two files
    assert store.write([oi(T0 + MIN, 1.5)]) == {f"{OPEN_INTEREST}/{BTC}": 1}
    assert names(store, OPEN_INTEREST)[0] == cf.file_name(T0, T0 + 2 * MIN)
    assert store.write([oi(T0 + 2 * MIN, 2.5), oi(T0 + 11 * MIN, 3.5)]) == {f"{OPEN_INTEREST}/{BTC}": 2}
    assert names(store, OPEN_INTEREST) == [cf.file_name(T0, T0 + 12 * MIN), cf.file_name(T0 + 20 * MIN, T0 + 20 * MIN)]
    table = stored(store, OPEN_INTEREST)
    assert table["ts_init"].to_pylist() == [T0 + m * MIN for m in (0, 1, 2, 10, 11, 12, 20)]
    assert table["open_interest"].to_pylist() == [1.0, 1.5, 2.5, 3.0, 3.5, 4.0, 5.0]
    assert not [p for p in store.root.rglob(".*")]  # no temporary file left


def test_funding_metadata_survives_a_merge(store):
    store.write([funding(T0), funding(T0 + 2 * MIN)])
    store.write([funding(T0 + MIN, 0.0005)])
    [path] = store.files(FUNDING_RATE_UPDATE, BTC)
    table = pq.read_table(path)
    assert table.schema.metadata[b"instrument_id"] == BTC.encode()
    assert table["rate"].to_pylist() == [b'"0.0001"', b'"0.0005"', b'"0.0001"']


def test_instrument_definitions_are_stored_only_when_they_change(store):
    assert store.write([instrument(T0)]) == {f"{CRYPTO_PERPETUAL}/{BTC}": 1}
    assert store.write([instrument(T0 + MIN)]) == {f"{CRYPTO_PERPETUAL}/{BTC}": 0}  # same, newer ts
    assert store.write([instrument(T0 + 2 * MIN, taker_fee="0.0004")]) == {f"{CRYPTO_PERPETUAL}/{BTC}": 1}
    assert store.write([instrument(T0 + 3 * MIN, taker_fee="0.0004")]) == {f"{CRYPTO_PERPETUAL}/{BTC}": 0}
    rows = stored(store, CRYPTO_PERPETUAL).to_pylist()
    assert [(r["ts_init"], r["taker_fee"]) for r in rows] == [(T0, "0.000500"), (T0 + 2 * MIN, "0.0004")]


def test_random_writes_keep_disjoint_sorted_files_equal_to_a_model(store):
    rng = random.Random(7)
    model: dict[int, float] = {}
    for _ in range(40):
        start = rng.randrange(0, 200)
        batch = [oi(T0 + m * MIN, rng.random()) for m in rng.sample(range(start, start + 30), rng.randrange(1, 8))]
        store.write(batch)
        model.update({e.ts_event: e.open_interest for e in batch})
        files = cf.list_files(store.directory(OPEN_INTEREST, BTC))
        assert cf.intervals_disjoint(files)
        for f in files:
            ts = pq.read_table(f.path)["ts_init"].to_pylist()
            assert ts == sorted(set(ts)) and (ts[0], ts[-1]) == (f.start, f.end)
    table = stored(store, OPEN_INTEREST)
    assert dict(zip(table["ts_init"].to_pylist(), table["open_interest"].to_pylist(), strict=True)) == model


# -- crash recovery -----------------------------------------------------------------------------


LATE_BATCH = [oi(T0 + MIN, 9.0), oi(T0 + 3 * MIN, 9.0), oi(T0 + 4 * MIN, 9.0)]  # meets files 2 and 3


def _crash_after(store: CatalogStore, step: str, monkeypatch) -> None:
    """Merge a batch with two of three files, stopping the process at `step` of `replace_files`."""
    store.write([oi(T0)])
    store.write([oi(T0 + 2 * MIN)])
    store.write([oi(T0 + 4 * MIN)])

    class Crash(Exception):
        pass

    real_replace, real_finish = cf.os.replace, cf._finish_commit

    def replace(src, dst):
        if step == "tmp_written" and str(src).endswith(cf.TMP_SUFFIX):
            raise Crash
        return real_replace(src, dst)

    def finish(commit, final, superseded, durable):
        if step == "committed":
            raise Crash
        if step == "half_deleted":
            os.unlink(next(iter(superseded)).path)
            raise Crash
        return real_finish(commit, final, superseded, durable)

    monkeypatch.setattr(cf.os, "replace", replace)
    monkeypatch.setattr(cf, "_finish_commit", finish)
    with pytest.raises(Crash):
        store.write(LATE_BATCH)
    monkeypatch.setattr(cf.os, "replace", real_replace)
    monkeypatch.setattr(cf, "_finish_commit", real_finish)


@pytest.mark.parametrize("step", ["tmp_written", "committed", "half_deleted"])
def test_a_crash_never_leaves_overlap_and_recovery_completes_or_rolls_back(store, step, monkeypatch):
    _crash_after(store, step, monkeypatch)
    directory = store.directory(OPEN_INTEREST, BTC)
    # What a reader sees right after the crash: disjoint *.parquet files only.
    assert cf.intervals_disjoint(cf.list_files(directory))
    assert all(not p.name.startswith(".") for p in directory.glob("*.parquet"))

    reopened = CatalogStore(store.root, durable=False)  # the writer restarts
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]
    ts = stored(reopened, OPEN_INTEREST)["ts_init"].to_pylist()
    if step == "tmp_written":  # not committed: the old state, the batch is re-sent from the WAL
        assert ts == [T0, T0 + 2 * MIN, T0 + 4 * MIN]
        assert len(names(reopened, OPEN_INTEREST)) == 3
    else:  # committed: the merge is completed
        assert ts == [T0 + m * MIN for m in range(5)]
        assert names(reopened, OPEN_INTEREST) == [cf.file_name(T0, T0), cf.file_name(T0 + MIN, T0 + 4 * MIN)]
    reopened.write(LATE_BATCH)
    table = stored(reopened, OPEN_INTEREST)
    assert table["ts_init"].to_pylist() == [T0 + m * MIN for m in range(5)]
    assert table["open_interest"].to_pylist() == [1.0, 9.0, 1.0, 9.0, 9.0]


def test_compact_merges_each_days_files(store):
    day = 86_400 * 1_000_000_000
    for d in range(2):
        for h in range(3):
            store.write([oi(T0 + d * day + h * 60 * MIN), oi(T0 + d * day + h * 60 * MIN + MIN)])
    store.write([oi(T0 + 2 * day)])
    assert len(names(store, OPEN_INTEREST)) == 7
    assert store.compact(before_ns=T0 + 2 * day) == 4
    assert names(store, OPEN_INTEREST) == [
        cf.file_name(T0, T0 + 121 * MIN),
        cf.file_name(T0 + day, T0 + day + 121 * MIN),
        cf.file_name(T0 + 2 * day, T0 + 2 * day),
    ]
    assert stored(store, OPEN_INTEREST).num_rows == 13
    assert store.compact() == 0


def test_writer_modules_do_not_import_nautilus():
    import subprocess

    code = "import storage.store, sys; sys.exit('nautilus_trader' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0


def test_append_same_day_keeps_one_file_per_day_and_all_rows(tmp_path):
    """The writer's mode: frequent small flushes grow the day's file instead of adding files."""
    store = CatalogStore(tmp_path, append_same_day=True)
    day = 24 * 60 * MIN
    for i in range(10):  # ten flushes within day 1
        store.write([oi(T0 + i * MIN, float(i))])
    assert len(names(store, OPEN_INTEREST)) == 1
    store.write([oi(T0 + day + MIN, 99.0)])  # the next day starts a new file
    store.write([oi(T0 + 30 * MIN, 30.0)])  # a late row for day 1 merges into day 1's file
    files = names(store, OPEN_INTEREST)
    assert len(files) == 2 and files[0].startswith("2025-01-01T00-00-00") and files[1].startswith("2025-01-02")
    table = cf.read_files(cf.list_files(store.directory(OPEN_INTEREST, BTC)), OPEN_INTEREST_SCHEMA)
    assert table.num_rows == 12 and table["open_interest"].to_pylist()[-1] == 99.0


def test_append_same_day_starts_a_new_file_once_the_days_file_is_big(tmp_path, monkeypatch):
    """A flush re-writes the file it appends to: a busy day rolls over to new files instead."""
    monkeypatch.setattr(cf, "APPEND_MAX_BYTES", 6_000)
    store = CatalogStore(tmp_path, append_same_day=True)
    for flush in range(8):  # flushes of 100 rows each, all in one day
        store.write([oi(T0 + (flush * 100 + i) * MIN // 100, float(i)) for i in range(100)])
    files = cf.list_files(store.directory(OPEN_INTEREST, BTC))
    assert 1 < len(files) < 8 and cf.intervals_disjoint(files)
    assert all(os.path.getsize(f.path) < 6_000 + 3_000 for f in files[:-1])  # none grew far past the limit
    assert cf.read_files(files, OPEN_INTEREST_SCHEMA).num_rows == 800


def test_appending_streams_the_days_file_and_keeps_its_row_groups_full(tmp_path, monkeypatch):
    """The append path copies the day's file group by group: same rows as a merge in one go,
    every row group full but the last (a partial last group is re-packed, not left behind)."""
    monkeypatch.setattr(cf, "ROWS_PER_GROUP", 10)
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)
    model = {}
    for flush in range(9):  # 7 rows per flush: each flush ends in a partial group
        batch = [oi(T0 + (flush * 7 + i) * MIN, float(flush * 7 + i)) for i in range(7)]
        assert store.write(batch) == {f"{OPEN_INTEREST}/{BTC}": 7}
        model.update({e.ts_event: e.open_interest for e in batch})
    [only] = cf.list_files(store.directory(OPEN_INTEREST, BTC))
    meta = pq.ParquetFile(only.path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10] * 6 + [3]
    table = pq.read_table(only.path)
    assert dict(zip(table["ts_init"].to_pylist(), table["open_interest"].to_pylist(), strict=True)) == model
    assert (only.start, only.end) == (T0, T0 + 62 * MIN)
    assert not [p for p in os.listdir(os.path.dirname(only.path)) if p.startswith(".")]


def test_split_at_copies_only_the_row_groups_that_end_before_the_new_rows_ms(tmp_path, monkeypatch):
    monkeypatch.setattr(cf, "ROWS_PER_GROUP", 10)
    store = CatalogStore(tmp_path, durable=False)
    store.write([oi(T0 + i * MIN, float(i)) for i in range(35)])  # row groups [10, 10, 10, 5]
    [file] = cf.list_files(store.directory(OPEN_INTEREST, BTC))
    for start, copied in [
        (T0, 0),  # before every row: the whole file is the tail
        (T0 + 20 * MIN, 2),  # the first row of group 2
        (T0 + 25 * MIN, 2),  # inside group 2
        (T0 + 19 * MIN + 500, 1),  # group 1 ends in the same ms: a liquidation there may probe into it
        (T0 + 99 * MIN, 3),  # after every row: the last group still re-packs with the new rows
    ]:
        head, tail = cf.split_at(file, OPEN_INTEREST_SCHEMA, start)
        assert (head.file, head.copied) == (file, copied)
        assert tail["ts_init"].to_pylist() == [T0 + i * MIN for i in range(copied * 10, 35)]


def test_a_flush_sharing_a_ms_with_the_days_last_rows_reads_only_the_files_tail(tmp_path, monkeypatch):
    """The soak's case: liquidations arrive several per ms, a flush cuts through a ms, and the
    next flush's first rows land on ts_init below the stored last ones (about every other flush).
    That is merged with the tail of the day's file, never a read of the whole file; the rows
    stay exact (re-sends add nothing) and the groups full."""
    from storage.schema import LIQUIDATION
    from messages.events import Liquidation

    monkeypatch.setattr(cf, "ROWS_PER_GROUP", 10)
    whole_reads, read_files = [], cf.read_files
    monkeypatch.setattr(cf, "read_files", lambda files, schema: whole_reads.append(files) or read_files(files, schema))
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)
    rng = random.Random(5)
    rows = [Liquidation(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id=ETH, ts_event=T0 + (r // 3) * 1_000_000,
                        ts_recv=T0, side=rng.choice(["LONG", "SHORT"]), quantity=0.001 * (r + 1), price=90_000.0,
                        value=90.0 * (r + 1)) for r in range(200)]  # three per ms
    cut, overlapped = 0, 0
    while cut < len(rows):
        batch = rows[cut : (cut := cut + rng.randrange(4, 12))]
        resent = rows[max(0, cut - 20) : cut - len(batch)]  # a collector re-sending what was stored
        stored_max = max((f.end for f in cf.list_files(store.directory(LIQUIDATION, ETH))), default=-1)
        keys = build_tables(batch)[(LIQUIDATION, ETH)]["ts_init"].to_pylist()
        overlapped += keys[0] <= stored_max
        assert store.write(resent + batch) == {f"{LIQUIDATION}/{ETH}": len(batch)}
    assert overlapped >= 5 and whole_reads == []
    [file] = cf.list_files(store.directory(LIQUIDATION, ETH))
    meta = pq.ParquetFile(file.path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10] * 20
    table = pq.read_table(file.path)
    assert sorted(table["quantity"].to_pylist()) == [e.quantity for e in rows]
    assert table["ts_init"].to_pylist() == sorted(set(table["ts_init"].to_pylist()))


def test_flushes_leave_no_file_name_behind_in_memory(tmp_path):
    """Python 3.12.0-3.12.5 never free a string pathlib has parsed (CPython gh-113993): a writer
    making new file names every flush would grow for ever (+9 MB/h in the 60-minute soak)."""
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)
    store.write([oi(T0, 0.0), funding(T0)])  # directories, schemas and imports settle first
    before = sys.getunicodeinternedsize()
    for i in range(1, 201):  # 200 flushes: each re-writes three day files under new names
        store.write([oi(T0 + i * MIN, float(i)), funding(T0 + i * MIN)])
    assert len(cf.list_files(store.directory(OPEN_INTEREST, BTC))) == 1
    assert sys.getunicodeinternedsize() - before < 20


# -- a write that fails for one kind and instrument ----------------------------------------------


def test_a_group_that_cannot_be_written_is_reported_and_the_others_are_stored(store):
    """An id no file system takes as a directory name (msgspec checks constraints on decoding only,
    so this event never went through the validator): ENAMETOOLONG for its group, named, the rest stored."""
    poison = oi(T0, 1.0, "A" * 300 + "-PERP.BINANCE")
    failed = []
    written = store.write([oi(T0, 1.0), poison, funding(T0)], failed)
    assert written == {f"{OPEN_INTEREST}/{BTC}": 1, f"{FUNDING_RATE_UPDATE}/{BTC}": 1, f"{FUNDING_RATE_INFO}/{BTC}": 1}
    [failure] = failed
    assert failure.directory == f"{OPEN_INTEREST}/{poison.instrument_id}" and failure.events == [poison]
    assert failure.error.errno == errno.ENAMETOOLONG and f"writing {store.data}" in failure.error.__notes__[0]
    with pytest.raises(OSError, match="too long"):  # without a list to report to, as before: raised
        store.write([poison])


def test_an_unreadable_file_is_moved_aside_and_the_write_goes_on(tmp_path):
    """Garbage in the day's file the writer appends to: pyarrow cannot read it (ArrowInvalid), nor
    could ParquetDataCatalog. It goes to quarantine/, the new rows are stored, other files stay."""
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)
    day = 24 * 60 * MIN
    store.write([oi(T0 - day, 0.5)])  # yesterday: a file that stays
    store.write([oi(T0 + i * MIN, float(i)) for i in range(3)])
    [yesterday, today] = store.files(OPEN_INTEREST, BTC)
    today.write_bytes(b"garbage" * 100)
    failed = []
    assert store.write([oi(T0 + 5 * MIN, 5.0)], failed) == {f"{OPEN_INTEREST}/{BTC}": 1} and failed == []
    [aside] = (tmp_path / "quarantine" / OPEN_INTEREST / BTC).iterdir()
    assert aside.name.endswith(today.name) and aside.read_bytes() == b"garbage" * 100
    assert stored(store, OPEN_INTEREST)["open_interest"].to_pylist() == [0.5, 5.0]
    assert yesterday in store.files(OPEN_INTEREST, BTC)
