"""Funding of several instruments read back through NautilusTrader 1.231: `query_funding_rates`
gives every row its own instrument id, where a bare `catalog.query(FundingRateUpdate)` does not;
settlements are `FundingSettlement`s, never `FundingRateUpdate`s."""

from decimal import Decimal

from nautilus_trader.persistence.catalog import ParquetDataCatalog

from storage.store import CatalogStore
from messages.events import FundingRate
from messages.nautilus import FundingRateUpdate, FundingSettlement, query_funding_rates

T0 = 1_793_491_200_000_000_000  # 2026-11-01T00:00Z
HOUR = 3_600_000_000_000
BINANCE, HYPERLIQUID = "BTCUSDT-PERP.BINANCE", "BTC-USD-PERP.HYPERLIQUID"


def funding(iid: str, venue: str, ts: int, rate: float, interval: int, settled: bool = False) -> FundingRate:
    return FundingRate(venue=venue, symbol="BTC/USDT:USDT", instrument_id=iid, ts_event=ts, ts_recv=ts, rate=rate,
                       interval_minutes=interval, settled=settled)


def test_funding_of_two_instruments_keeps_each_rows_instrument(tmp_path) -> None:
    rows = [funding(BINANCE, "BINANCE", T0 + i * 8 * HOUR, 0.0001 * (i + 1), 480) for i in range(3)]
    rows += [funding(HYPERLIQUID, "HYPERLIQUID", T0 + i * HOUR, -0.00001 * (i + 1), 60) for i in range(5)]
    CatalogStore(tmp_path, durable=False).write(rows)
    catalog = ParquetDataCatalog(str(tmp_path))
    truth = sorted((r.instrument_id, r.ts_event, Decimal(str(r.rate)), r.interval_minutes) for r in rows)

    def seen(updates: list) -> list:
        return sorted((str(u.instrument_id), u.ts_event, Decimal(str(u.rate)), u.interval) for u in updates)

    assert seen(query_funding_rates(catalog)) == truth
    got = query_funding_rates(catalog, [HYPERLIQUID, BINANCE])
    assert seen(got) == truth and [u.ts_init for u in got] == sorted(u.ts_init for u in got)
    # filters go to catalog.query as they are
    assert seen(query_funding_rates(catalog, end=T0 + HOUR)) == [t for t in truth if t[1] <= T0 + HOUR]
    assert query_funding_rates(ParquetDataCatalog(str(tmp_path / "empty"))) == []
    # The Nautilus 1.231 behaviour this avoids: one query over both labels every row with one id.
    bare = catalog.query(FundingRateUpdate)
    assert len(bare) == len(rows) and len({str(u.instrument_id) for u in bare}) == 1


def test_settlements_are_their_own_series(tmp_path) -> None:
    """Live estimates and settlements of two instruments, some at the same instant: each read
    back as its own type with its own id; `query_funding_rates` holds no settlement."""
    live = [funding(BINANCE, "BINANCE", T0 + i * HOUR, 0.0001 + i * 1e-6, 480) for i in range(9)]
    settled = [funding(BINANCE, "BINANCE", T0 + i * 8 * HOUR, 0.0002 * (i + 1), 480, True) for i in range(2)]
    settled += [funding(HYPERLIQUID, "HYPERLIQUID", T0 + i * HOUR, -0.00001 * (i + 1), 60, True) for i in range(4)]
    CatalogStore(tmp_path, durable=False).write(live + settled)
    catalog = ParquetDataCatalog(str(tmp_path))
    assert sorted((str(u.instrument_id), u.ts_event, Decimal(u.rate)) for u in query_funding_rates(catalog)) == sorted(
        (r.instrument_id, r.ts_event, Decimal(repr(r.rate))) for r in live)
    got = [c.data for c in catalog.query(FundingSettlement)]  # custom data: the id is a column
    assert sorted((str(s.instrument_id), s.ts_event, s.ts_init, s.rate, s.interval_minutes) for s in got) == sorted(
        (r.instrument_id, r.ts_event, r.ts_event, r.rate, r.interval_minutes) for r in settled)
    hyperliquid = [s for s in got if str(s.instrument_id) == HYPERLIQUID]
    assert [s.rate_8h for s in hyperliquid] == [r.rate * 8 for r in settled[2:]]  # hourly rates x 8
    # the shape Nautilus's own request_funding_rates answers with
    update = hyperliquid[0].to_funding_rate_update()
    assert (str(update.instrument_id), Decimal(update.rate), update.interval, update.ts_event) == (
        HYPERLIQUID, Decimal("-0.00001"), 60, T0)
