"""Funding of several instruments read back through NautilusTrader 1.231: `query_funding_rates`
gives every row its own instrument id, where a bare `catalog.query(FundingRateUpdate)` does not."""

from decimal import Decimal

from nautilus_trader.persistence.catalog import ParquetDataCatalog

from catalog.store import CatalogStore
from messages.events import FundingRate
from messages.nautilus import FundingRateUpdate, query_funding_rates

T0 = 1_793_491_200_000_000_000  # 2026-11-01T00:00Z
HOUR = 3_600_000_000_000
BINANCE, HYPERLIQUID = "BTCUSDT-PERP.BINANCE", "BTC-USD-PERP.HYPERLIQUID"


def funding(iid: str, venue: str, ts: int, rate: float, interval: int) -> FundingRate:
    return FundingRate(venue=venue, symbol="BTC/USDT:USDT", instrument_id=iid, ts_event=ts, ts_recv=ts, rate=rate,
                       interval_minutes=interval, settled=True)


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
