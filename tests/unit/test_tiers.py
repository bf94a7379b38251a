"""The writer's open day in tiers (storage/tiers.py): a flush writes about its own rows (small
files appended to, then new files merged in tiers), the day keeps few files, and every row is
stored exactly once with the store's usual semantics (corrections replace, re-sent
liquidations add nothing, distinct ones of one ms keep their slots). Real files in tmp_path.

The append bound is made small (4 KB instead of 128 KB) so that a few hundred rows make tiers.
tests/integration/test_tier_crash.py kills tier merges and reads them through ParquetDataCatalog.
"""

import os
import random

import pyarrow.parquet as pq
import pytest

from messages.events import Liquidation, OpenInterest
from storage import files as cf
from storage import tiers
from storage.schema import LIQUIDATION, OPEN_INTEREST, OPEN_INTEREST_SCHEMA
from storage.store import CatalogStore

T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
MS, MIN = 1_000_000, 60_000_000_000
BTC, ETH = "BTCUSDT-PERP.BINANCE", "ETHUSDT-LINEAR.BYBIT"


@pytest.fixture
def written_rows(monkeypatch):
    """Rows written to any Parquet file from here on (a flush's own, appends' re-writes, tier merges)."""
    monkeypatch.setattr(cf, "APPEND_MAX_BYTES", 4_000)
    count = [0]
    real = pq.ParquetWriter.write_table

    def counting(self, table, *args, **kwargs):
        count[0] += table.num_rows
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", counting)
    return count


def liquidation(r: int) -> Liquidation:
    rng = random.Random(r)
    return Liquidation(venue="BYBIT", symbol="ETH/USDT:USDT", instrument_id=ETH, ts_event=T0 + (r // 3) * 7 * MS,
                       ts_recv=T0, side=rng.choice(["LONG", "SHORT"]), quantity=0.001 * (r + 1), price=3000.0 + r % 50,
                       value=3.0 * (r + 1))  # three per ms: slots; a flush often cuts through a ms


def oi(ts: int, value: float) -> OpenInterest:
    return OpenInterest(venue="binance", symbol="BTCUSDT", instrument_id=BTC, ts_event=ts, ts_recv=ts,
                        open_interest=value, open_interest_value=value * 100)


def bound() -> int:
    """Files a day may hold: the newest, fewer than TIER_FANOUT per tier below MAX_TIER."""
    return 1 + (tiers.TIER_FANOUT - 1) * tiers.MAX_TIER


def test_a_busy_day_costs_its_rows_keeps_few_files_and_every_liquidation_once(tmp_path, written_rows):
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)  # the writer's mode
    rows = [liquidation(r) for r in range(6_000)]
    rng = random.Random(7)
    cut, flushes, most = 0, 0, 0
    while cut < len(rows):  # the writer's flushes: new rows only (its WAL cuts re-sends), often cutting a ms
        batch = rows[cut : (cut := cut + rng.randrange(20, 60))]
        assert store.write(batch) == {f"{LIQUIDATION}/{ETH}": len(batch)}
        flushes += 1
        most = max(most, len(cf.list_files(store.directory(LIQUIDATION, ETH))))
    cost = written_rows[0]
    assert store.write(rows[::-1]) == {f"{LIQUIDATION}/{ETH}": 0}  # the WAL replayed after a crash: nothing new
    files = cf.list_files(store.directory(LIQUIDATION, ETH))
    assert cf.intervals_disjoint(files) and most <= bound() and len(files) <= bound()
    sizes = [os.path.getsize(f.path) for f in files]
    assert max(map(tiers.tier_of, sizes)) >= 2, sizes  # merged twice over: tiers really formed
    table = cf.read_files(files, store_schema(store))
    assert sorted(table["quantity"].to_pylist()) == [e.quantity for e in rows]  # each once, none lost
    assert len(set(table["ts_init"].to_pylist())) == table.num_rows
    # Cost: every row written about once per tier (and while its small file grows), not once
    # per flush as when the day's file was re-written (here ~150 flushes: ~75x).
    assert cost <= (tiers.MAX_TIER + 3) * len(rows), (cost, flushes)


def store_schema(store: CatalogStore):
    return pq.read_schema(store.files(LIQUIDATION, ETH)[0])


def test_corrections_and_late_rows_replace_exactly_across_tier_files(tmp_path, written_rows):
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)
    model = {}
    for flush in range(40):  # a minute apart, 30 rows each: sealed files, merged in tiers
        batch = [oi(T0 + (flush * 60 + i * 2) * 1_000_000_000, float(flush * 100 + i)) for i in range(30)]
        store.write(batch)
        model.update({e.ts_event: e.open_interest for e in batch})
    before = cf.list_files(store.directory(OPEN_INTEREST, BTC))
    assert len(before) < 10
    # Corrections of stored rows in every file, late rows between stored ones, a re-send unchanged.
    fixes = [oi(ts, -1.0) for ts in sorted(model)[5::97]] + [oi(ts + 1, -2.0) for ts in sorted(model)[7::211]]
    fixes += [oi(ts, model[ts]) for ts in sorted(model)[::301]]
    changed = {e.ts_event: e.open_interest for e in fixes if model.get(e.ts_event) != e.open_interest}
    assert store.write(sorted(fixes, key=lambda e: e.ts_event)) == {f"{OPEN_INTEREST}/{BTC}": len(changed)}
    model.update(changed)
    files = cf.list_files(store.directory(OPEN_INTEREST, BTC))
    assert cf.intervals_disjoint(files) and len(files) <= bound()
    table = cf.read_files(files, OPEN_INTEREST_SCHEMA)
    assert dict(zip(table["ts_init"].to_pylist(), table["open_interest"].to_pylist(), strict=True)) == model
    assert store.write([oi(ts, v) for ts, v in sorted(model.items())[:50]]) == {f"{OPEN_INTEREST}/{BTC}": 0}


def test_only_the_writers_mode_merges_tiers(tmp_path, written_rows):
    """`derivs history` and other one-off writes (append_same_day off) leave their files alone."""
    store = CatalogStore(tmp_path, durable=False)
    for flush in range(12):
        store.write([oi(T0 + (flush * 60 + i) * 1_000_000_000, 1.0) for i in range(30)])
    assert len(cf.list_files(store.directory(OPEN_INTEREST, BTC))) == 12
