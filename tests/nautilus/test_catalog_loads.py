"""What CatalogStore writes loads through nautilus_trader 1.231 unchanged, value for value.

- a fresh process imports `messages.nautilus` and reads everything back with `ParquetDataCatalog`;
- `examples/backtest_counts.py` runs a BacktestEngine on the catalog and receives every row;
- Nautilus's own `write_data` of the same objects yields the same directories, file names,
  schemas (the one deliberate difference: uint64 timestamps for custom data) and values.
"""

import json
import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from nautilus_trader.model.identifiers import InstrumentId, Symbol
from nautilus_trader.model.objects import Currency, Money, Price, Quantity
from nautilus_trader.persistence.catalog.parquet import (
    ParquetDataCatalog,
    _parse_filename_timestamps,
    _timestamps_to_filename,
)

from storage import files as cf
from storage.schema import (
    CRYPTO_PERPETUAL,
    FUNDING_RATE_INFO,
    FUNDING_RATE_UPDATE,
    FUNDING_SETTLEMENT,
    OPEN_INTEREST,
)
from storage.batches import series_of
from storage.store import CatalogStore
from messages.events import FundingRate, Instrument, OpenInterest
from messages.funding import annualized, per_8h
from messages.nautilus import CryptoPerpetual, FundingRateInfo, FundingRateUpdate, FundingSettlement
from messages.nautilus import OpenInterest as NautilusOpenInterest

REPO = Path(__file__).resolve().parents[2]
T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
MIN = 60 * 1_000_000_000
HOUR = 60 * MIN

INSTRUMENTS = [  # as the venue modules build them (tests/nautilus/test_instruments_golden.py)
    Instrument(
        venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=T0, ts_recv=T0,
        raw_symbol="BTCUSDT", base="BTC", quote="USDT", settle="USDT", price_precision=2, size_precision=3,
        price_increment="0.10", size_increment="0.001", min_quantity="0.001", max_quantity="1000.000",
        min_notional="100", max_price="1246396.60", min_price="402.00", margin_init="1", margin_maint="1",
        max_leverage=125.0, maker_fee="0.000200", taker_fee="0.000500",
    ),
    Instrument(
        venue="BYBIT", symbol="ETH/USDT:USDT", instrument_id="ETHUSDT-LINEAR.BYBIT", ts_event=T0, ts_recv=T0,
        raw_symbol="ETHUSDT", base="ETH", quote="USDT", settle="USDT", price_precision=2, size_precision=2,
        price_increment="0.01", size_increment="0.01", lot_size="0.01", min_quantity="0.01", max_quantity="7240.00",
        min_notional="5", max_price="199999.98", min_price="0.01", margin_init="0.1", margin_maint="0.1",
        maker_fee="0.001", taker_fee="0.001", max_leverage=100.0,
    ),
    Instrument(
        venue="HYPERLIQUID", symbol="BTC/USDC:USDC", instrument_id="BTC-USD-PERP.HYPERLIQUID", ts_event=T0,
        ts_recv=T0, raw_symbol="BTC", base="BTC", quote="USD", settle="USDC", price_precision=1,
        size_precision=5, price_increment="0.1", size_increment="0.00001", min_notional="10", max_leverage=40.0,
    ),
    Instrument(  # a coin Nautilus has no currency for
        venue="HYPERLIQUID", symbol="HYPE/USDC:USDC", instrument_id="HYPE-USD-PERP.HYPERLIQUID", ts_event=T0,
        ts_recv=T0, raw_symbol="HYPE", base="HYPE", quote="USD", settle="USDC", price_precision=4,
        size_precision=2, price_increment="0.0001", size_increment="0.01", min_notional="10",
    ),
]
IDS = [i.instrument_id for i in INSTRUMENTS]


def _oi(iid: str, ts: int, k: float) -> OpenInterest:
    venue = iid.rsplit(".", 1)[1]
    history = int(k) % 3 == 0  # a mix of polls and 5-minute history buckets
    return OpenInterest(
        venue=venue, symbol="X/USDT:USDT", instrument_id=iid, ts_event=ts, ts_recv=ts,
        open_interest=1000.0 + k, open_interest_value=(1000.0 + k) * 97_000.5,
        source="history" if history else "poll", period_s=300 if history else 0,
    )


def _funding(iid: str, ts: int, k: int) -> FundingRate:
    venue = iid.rsplit(".", 1)[1]
    return FundingRate(
        venue=venue, symbol="X/USDT:USDT", instrument_id=iid, ts_event=ts, ts_recv=ts,
        rate=[0.0001, -0.0000125, 0.00037, 1e-06][k % 4],
        interval_minutes=[480, 240, 60][k % 3],
        next_funding_ns=ts + 8 * HOUR if k % 2 else None,
        predicted_rate=0.0002 if k % 3 == 0 else None,
        mark_price=97_000.25 + k if k % 2 else None,
        index_price=96_999.75 if k % 4 == 1 else None,
        settled=k % 2 == 0,
    )


def batches() -> list[list]:
    """Several flushes: new rows, late rows inside a file, corrections, a definition change."""
    first = list(INSTRUMENTS)
    for n, iid in enumerate(IDS):
        first += [_oi(iid, T0 + i * 5 * MIN, i) for i in range(10 + n)]
        first += [_funding(iid, T0 + i * HOUR, i) for i in range(3 + n)]
    second = [_oi(iid, T0 + 2 * HOUR + i * 5 * MIN, 50 + i) for iid in IDS for i in range(6)]
    late = [_oi(IDS[0], T0 + 7 * MIN, 99.0), _oi(IDS[0], T0 + 10 * MIN, 77.0)]  # one new, one corrected
    late += [_funding(IDS[1], T0 + 30 * MIN, 5), _funding(IDS[1], T0 + 10 * HOUR, 6)]
    late += [_funding(IDS[2], T0 + HOUR, 4)]  # a settlement where a live estimate of the same instant is stored
    changed = [
        Instrument(**{f: getattr(INSTRUMENTS[0], f) for f in INSTRUMENTS[0].__struct_fields__} | {"ts_event": T0 + HOUR, "taker_fee": "0.0005"}),
        INSTRUMENTS[1],  # re-sent unchanged: stored once
    ]
    return [first, second, late, changed]


def model() -> dict:
    """What the catalog must hold: last write wins per (series, instrument, ts); live funding
    ("FundingRate") and settlements ("FundingSettlement") are two series."""
    rows: dict[tuple[str, str], dict[int, object]] = {}
    for batch in batches():
        for e in batch:
            rows.setdefault((series_of(e), e.instrument_id), {})[e.ts_event] = e
    return rows


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    store = CatalogStore(root)
    for batch in batches():
        store.write(batch)
    return root


def _nan(x):
    return None if isinstance(x, float) and math.isnan(x) else x


LOAD_SCRIPT = r"""
import json, math, sys
from nautilus_trader.model.data import CustomData
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from messages.nautilus import CryptoPerpetual, FundingRateInfo, FundingRateUpdate, FundingSettlement, OpenInterest

def nan(x):
    return None if isinstance(x, float) and math.isnan(x) else x

catalog = ParquetDataCatalog(sys.argv[1])
out = {"instruments": []}
for i in catalog.instruments():
    d = CryptoPerpetual.to_dict(i)
    d["class"] = type(i).__name__
    for key in ("min_notional", "max_notional"):
        money = getattr(i, key)
        if money is not None:
            d[key] = [str(money.as_decimal()), money.currency.code]
    out["instruments"].append(d)
oi = catalog.query(OpenInterest)
assert all(isinstance(x, CustomData) and isinstance(x.data, OpenInterest) for x in oi)
out["open_interest"] = [
    [d.instrument_id.value, d.ts_event, d.ts_init, d.open_interest, d.open_interest_value, d.source, d.period_s]
    for d in (x.data for x in oi)
]
info = [x.data for x in catalog.query(FundingRateInfo)]
out["funding_rate_info"] = [
    [d.instrument_id.value, d.ts_event, d.ts_init, d.rate, d.interval_minutes, d.rate_annualized, d.rate_8h,
     d.next_funding_ns, nan(d.predicted_rate), nan(d.predicted_rate_annualized), nan(d.predicted_rate_8h),
     nan(d.mark_price), nan(d.index_price), d.settled]
    for d in info
]
out["funding_settlement"] = [
    [d.instrument_id.value, d.ts_event, d.ts_init, d.rate, d.interval_minutes, d.rate_annualized, d.rate_8h,
     nan(d.mark_price)]
    for d in (x.data for x in catalog.query(FundingSettlement))
]
# Per instrument: Nautilus 1.231 labels every row of one query with the first file's id.
ids = sorted({i.id.value for i in catalog.instruments()})
out["funding_rate_update"] = [
    [u.instrument_id.value, u.ts_event, u.ts_init, u.rate, u.interval, u.next_funding_ns]
    for iid in ids
    for u in catalog.query(FundingRateUpdate, identifiers=[iid])
]
out["oi_window"] = len(catalog.query(OpenInterest, start=%d, end=%d))
print(json.dumps(out))
""" % (T0 + 2 * HOUR, T0 + 2 * HOUR + 10 * MIN)


def test_fresh_process_reads_every_value_back(catalog):
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(catalog)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    rows = model()

    expected_oi = sorted(
        [e.instrument_id, ts, ts, e.open_interest, e.open_interest_value, e.source, e.period_s]
        for (kind, _), by_ts in rows.items() if kind == "OpenInterest"
        for ts, e in by_ts.items()
    )
    assert sorted(got["open_interest"]) == expected_oi
    assert got["oi_window"] == 3 * len(IDS)  # ts filter on uint64 columns works

    funding = [(ts, e) for (kind, _), by_ts in rows.items() if kind == "FundingRate" for ts, e in by_ts.items()]
    assert sorted(got["funding_rate_update"]) == sorted(
        [e.instrument_id, ts, ts, str(Decimal(repr(e.rate))), e.interval_minutes, e.next_funding_ns]
        for ts, e in funding
    )
    for row in got["funding_rate_update"]:
        assert Decimal(row[3]) == Decimal(repr(float(row[3])))  # a plain decimal string
    def yearly(rate, minutes):  # noqa: ANN001, ANN202 - what messages.funding must give, by hand
        return None if rate is None else rate * (365 * 24 * 60) / minutes

    def eight_h(rate, minutes):  # noqa: ANN001, ANN202
        return None if rate is None else rate * 480 / minutes

    assert sorted(got["funding_rate_info"], key=str) == sorted(
        (
            [e.instrument_id, ts, ts, e.rate, e.interval_minutes, yearly(e.rate, e.interval_minutes),
             eight_h(e.rate, e.interval_minutes), e.next_funding_ns or 0, e.predicted_rate,
             yearly(e.predicted_rate, e.interval_minutes), eight_h(e.predicted_rate, e.interval_minutes),
             e.mark_price, e.index_price, False]
            for ts, e in funding
        ),
        key=str,
    )
    settlements = [(ts, e) for (kind, _), by_ts in rows.items() if kind == "FundingSettlement" for ts, e in by_ts.items()]
    assert settlements and all(e.settled for _, e in settlements) and not any(e.settled for _, e in funding)
    assert sorted(got["funding_settlement"], key=str) == sorted(
        ([e.instrument_id, ts, ts, e.rate, e.interval_minutes, yearly(e.rate, e.interval_minutes),
          eight_h(e.rate, e.interval_minutes), e.mark_price] for ts, e in settlements),
        key=str,
    )

    expected_instruments = []
    for (kind, _), by_ts in rows.items():
        if kind != "Instrument":
            continue
        kept = []  # an unchanged re-send is not stored again
        for ts in sorted(by_ts):
            e = by_ts[ts]
            if not kept or _definition(kept[-1]) != _definition(e):
                kept.append(e)
        expected_instruments += [_expected_instrument(e) for e in kept]
    for d in got["instruments"]:
        for key in ("min_notional", "max_notional"):
            if d[key] is not None:
                d[key][0] = Decimal(d[key][0])
    key = lambda d: (d["id"], d["ts_init"])  # noqa: E731
    assert sorted(got["instruments"], key=key) == sorted(expected_instruments, key=key)


def _definition(e: Instrument) -> dict:
    return {f: getattr(e, f) for f in e.__struct_fields__ if f not in ("ts_event", "ts_recv")}


def _expected_instrument(e: Instrument) -> dict:
    info = {"symbol": e.symbol} | ({"max_leverage": e.max_leverage} if e.max_leverage else {})
    money = lambda amount: amount and [Decimal(amount), e.quote]  # noqa: E731
    return {
        "type": "CryptoPerpetual",
        "class": "CryptoPerpetual",
        "id": e.instrument_id,
        "raw_symbol": e.raw_symbol,
        "base_currency": e.base,
        "quote_currency": e.quote,
        "settlement_currency": e.settle,
        "is_inverse": False,
        "price_precision": e.price_precision,
        "price_increment": e.price_increment,  # as written: "0.10" stays precision 2
        "size_precision": e.size_precision,
        "size_increment": e.size_increment,
        "multiplier": e.multiplier,
        "lot_size": e.lot_size,
        "max_quantity": e.max_quantity,
        "min_quantity": e.min_quantity,
        "max_notional": money(e.max_notional),
        "min_notional": money(e.min_notional),
        "max_price": e.max_price,
        "min_price": e.min_price,
        "margin_init": e.margin_init,
        "margin_maint": e.margin_maint,
        "maker_fee": e.maker_fee,
        "taker_fee": e.taker_fee,
        "ts_event": e.ts_event,
        "ts_init": e.ts_event,
        "tick_scheme_name": None,
        "info": info,
    }


def test_backtest_engine_receives_every_row(catalog):
    done = subprocess.run(
        [sys.executable, "examples/backtest_counts.py", str(catalog)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    rows = model()
    assert counts == {
        "open_interest": {iid: len(rows[("OpenInterest", iid)]) for iid in IDS},
        "funding_rate": {iid: len(rows[("FundingRate", iid)]) for iid in IDS},  # live estimates only
        "funding_settlement": {iid: len(rows[("FundingSettlement", iid)]) for iid in IDS},
    }


# -- the same objects written by Nautilus itself ------------------------------------------------


def _nautilus_objects(batch: list) -> list:
    """Nautilus objects for our events, built the way a Nautilus adapter would build them."""
    objects = []
    for e in batch:
        iid = InstrumentId.from_str(e.instrument_id)
        if isinstance(e, OpenInterest):
            objects.append(NautilusOpenInterest(e.ts_event, e.ts_event, iid, e.open_interest, e.open_interest_value,
                                                e.source, e.period_s))
        elif isinstance(e, FundingRate) and e.settled:
            objects.append(FundingSettlement(
                e.ts_event, e.ts_event, iid, e.rate, e.interval_minutes, annualized(e.rate, e.interval_minutes),
                per_8h(e.rate, e.interval_minutes), math.nan if e.mark_price is None else e.mark_price,
            ))
        elif isinstance(e, FundingRate):
            objects.append(
                FundingRateUpdate(iid, Decimal(repr(e.rate)), e.ts_event, e.ts_event, interval=e.interval_minutes, next_funding_ns=e.next_funding_ns)
            )
            predicted = math.nan if e.predicted_rate is None else e.predicted_rate
            objects.append(
                FundingRateInfo(
                    e.ts_event, e.ts_event, iid, e.rate, e.interval_minutes, annualized(e.rate, e.interval_minutes),
                    per_8h(e.rate, e.interval_minutes), e.next_funding_ns or 0, predicted,
                    annualized(predicted, e.interval_minutes), per_8h(predicted, e.interval_minutes),
                    *(math.nan if v is None else v for v in (e.mark_price, e.index_price)), e.settled,
                )
            )
        else:
            quote = Currency.from_str(e.quote)
            info = {"symbol": e.symbol} | ({"max_leverage": e.max_leverage} if e.max_leverage else {})
            optional = lambda make, value: None if value is None else make(value)  # noqa: E731
            objects.append(
                CryptoPerpetual(
                    iid, Symbol(e.raw_symbol), Currency.from_str(e.base), quote, Currency.from_str(e.settle), False,
                    e.price_precision, e.size_precision, Price.from_str(e.price_increment),
                    Quantity.from_str(e.size_increment), e.ts_event, e.ts_event,
                    multiplier=Quantity.from_str(e.multiplier), lot_size=Quantity.from_str(e.lot_size),
                    max_quantity=optional(Quantity.from_str, e.max_quantity),
                    min_quantity=optional(Quantity.from_str, e.min_quantity),
                    max_notional=optional(lambda v: Money(Decimal(v), quote), e.max_notional),
                    min_notional=optional(lambda v: Money(Decimal(v), quote), e.min_notional),
                    max_price=optional(Price.from_str, e.max_price), min_price=optional(Price.from_str, e.min_price),
                    margin_init=Decimal(e.margin_init), margin_maint=Decimal(e.margin_maint),
                    maker_fee=Decimal(e.maker_fee), taker_fee=Decimal(e.taker_fee), info=info,
                )
            )
    return objects


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*.parquet"))}


def test_layout_schema_and_values_match_nautilus_own_writer(tmp_path):
    batch = batches()[0]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    CatalogStore(ours).write(batch)
    ParquetDataCatalog(str(theirs)).write_data(_nautilus_objects(batch))

    our_files, their_files = _files(ours), _files(theirs)
    assert our_files.keys() == their_files.keys()  # directories and file names
    assert {Path(k).parts[1] for k in our_files} == {OPEN_INTEREST, FUNDING_RATE_UPDATE, FUNDING_RATE_INFO,
                                                     FUNDING_SETTLEMENT, CRYPTO_PERPETUAL}
    for name, path in our_files.items():
        mine, nautilus = pq.read_table(path), pq.read_table(their_files[name])
        kind = Path(name).parts[1]
        assert mine.schema.names == nautilus.schema.names, name
        assert mine.schema.metadata == nautilus.schema.metadata, name
        for field in mine.schema:
            other = nautilus.schema.field(field.name)
            if kind.startswith("custom_") and field.name in ("ts_event", "ts_init"):
                # Deliberate: Nautilus writes int64 for custom data, we write uint64 (design §4).
                assert (str(field.type), str(other.type)) == ("uint64", "int64")
            else:
                assert (field.name, field.type, field.nullable) == (other.name, other.type, other.nullable), name
        mine_rows = [{k: _nan(v) for k, v in r.items()} for r in mine.to_pylist()]
        their_rows = [{k: _nan(v) for k, v in r.items()} for r in nautilus.to_pylist()]
        if kind == CRYPTO_PERPETUAL:  # Money prints with the currency's precision in Nautilus
            for m, t in zip(mine_rows, their_rows, strict=True):
                if m["min_notional"] is not None:
                    assert Money.from_str(m.pop("min_notional")) == Money.from_str(t.pop("min_notional"))
        assert mine_rows == their_rows, name


def test_file_names_match_nautilus():
    for ts in (T0, T0 + 1, 1_700_000_000_123_456_789, 951_782_400_000_000_999, 4_102_444_799_999_999_999):
        name = cf.file_name(ts, ts + 7)
        assert name == _timestamps_to_filename(ts, ts + 7)
        assert cf.parse_file_name(name) == _parse_filename_timestamps(name) == (ts, ts + 7)


def test_catalog_ignores_temporary_files(catalog, tmp_path):
    root = tmp_path / "c"
    store = CatalogStore(root, durable=False)
    store.write([_oi(IDS[0], T0, 1.0)])
    directory = store.directory(OPEN_INTEREST, IDS[0])
    final = store.files(OPEN_INTEREST, IDS[0])[0].name
    (directory / f".{final}{cf.TMP_SUFFIX}").write_bytes(b"half a parquet file")
    (directory / f".{final}{cf.COMMIT_SUFFIX}").write_bytes(b"not yet renamed")
    nautilus = ParquetDataCatalog(str(root))
    assert [Path(p).name for p in nautilus.get_file_list_from_data_cls(NautilusOpenInterest)] == [final]
    assert len(nautilus.query(NautilusOpenInterest)) == 1


def test_store_and_nautilus_writer_share_a_directory(tmp_path):
    """Files Nautilus wrote (int64 custom timestamps) merge; Nautilus can append after ours."""
    iid = IDS[0]
    nautilus = ParquetDataCatalog(str(tmp_path))
    nautilus.write_data(_nautilus_objects([_oi(iid, T0 + i * MIN, i) for i in range(3)]))
    store = CatalogStore(tmp_path, durable=False)
    assert store.write([_oi(iid, T0 + MIN, 42.0), _oi(iid, T0 + 5 * MIN, 5.0)]) == {f"{OPEN_INTEREST}/{iid}": 2}
    nautilus.write_data(_nautilus_objects([_oi(iid, T0 + 10 * MIN, 10.0)]))  # disjoint: accepted
    values = [(x.data.ts_init, x.data.open_interest) for x in nautilus.query(NautilusOpenInterest)]
    assert values == [(T0, 1000.0), (T0 + MIN, 1042.0), (T0 + 2 * MIN, 1002.0), (T0 + 5 * MIN, 1005.0), (T0 + 10 * MIN, 1010.0)]
    assert len(store.files(OPEN_INTEREST, iid)) == 2


def test_the_writer_appends_to_a_day_file_nautilus_wrote(tmp_path):
    """The writer's append (the day's file streamed into the new one) and a merge of late rows
    into that file's tail cast Nautilus's int64 timestamps and keep its rows; Nautilus reads the
    result as one file."""
    iid = IDS[0]
    nautilus = ParquetDataCatalog(str(tmp_path))
    nautilus.write_data(_nautilus_objects([_oi(iid, T0 + i * MIN, i) for i in range(3)]))
    store = CatalogStore(tmp_path, durable=False, append_same_day=True)
    assert store.write([_oi(iid, T0 + 5 * MIN, 5.0)]) == {f"{OPEN_INTEREST}/{iid}": 1}
    assert len(store.files(OPEN_INTEREST, iid)) == 1
    values = [(x.data.ts_init, x.data.open_interest) for x in ParquetDataCatalog(str(tmp_path)).query(NautilusOpenInterest)]
    assert values == [(T0, 1000.0), (T0 + MIN, 1001.0), (T0 + 2 * MIN, 1002.0), (T0 + 5 * MIN, 1005.0)]
    # A late row inside the file, and a change before its first: both merge into the same file.
    assert store.write([_oi(iid, T0 - MIN, 9.0), _oi(iid, T0, 7.0), _oi(iid, T0 + 3 * MIN, 3.0)]) == {f"{OPEN_INTEREST}/{iid}": 3}
    assert len(store.files(OPEN_INTEREST, iid)) == 1
    values = [(x.data.ts_init, x.data.open_interest) for x in ParquetDataCatalog(str(tmp_path)).query(NautilusOpenInterest)]
    assert values == [(T0 - MIN, 1009.0), (T0, 1007.0), (T0 + MIN, 1001.0), (T0 + 2 * MIN, 1002.0),
                      (T0 + 3 * MIN, 1003.0), (T0 + 5 * MIN, 1005.0)]
