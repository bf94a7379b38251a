"""Binance USDT-M history: open interest and settled funding, paged as Binance serves them
(`venues/history.py` drives; the ranges it hands over are aligned and within retention).

- OI (`/futures/data/openInterestHist`): windows of at most 500 periods (startTime + endTime +
  limit=500). Only the last 30 days exist (`limits.OI_HISTORY_RETENTION_DAYS`): the driver clips
  an older start to that floor, or refuses a range entirely older.
- Funding (`/fapi/v1/fundingRate`): by hand, next startTime = last fundingTime + 1, limit 1000
  (not ccxt's `paginate`, which steps in fixed 8 h x 1000 windows and loses rows of 4 h / 1 h
  symbols); its rows carry the mark price.
- Funding intervals: `/fapi/v1/fundingInfo` lists only adjusted symbols; the others have 8 h.
"""

import time
from collections.abc import AsyncIterator
from typing import Any

from messages.events import OpenInterest, checked
from venues.binance import archive
from venues.base import MS, FundingPage, Market, Progress, VenueAdapter, info_of
from venues.binance.limits import OI_HISTORY_PERIODS, OI_HISTORY_RETENTION_DAYS
from venues.binance.schemas import BinanceFundingInfo, BinanceFundingRate, BinanceOpenInterestHist
from venues.history import PERIODS_MS, forward_funding
from venues.schemas import blank_none, decode

OI_PAGE = 500
FUNDING_PAGE = 1000
DEFAULT_INTERVAL_MIN = 8 * 60


class BinanceHistory(VenueAdapter):
    """The history half of `BinanceAdapter`."""

    oi_history_periods = OI_HISTORY_PERIODS
    oi_history_retention_days = OI_HISTORY_RETENTION_DAYS
    oi_retention_archive = archive  # data.binance.vision's daily metrics files

    async def oi_history_pages(self, client: Any, market: Market, start_ms: int, end_ms: int, period: str,
                               progress: Progress | None) -> AsyncIterator[list[OpenInterest]]:
        step = PERIODS_MS[period]
        iid = self.instrument_id(market)
        pages = rows_so_far = 0
        for w_start in range(start_ms, end_ms + 1, OI_PAGE * step):
            w_end = min(w_start + (OI_PAGE - 1) * step, end_ms)
            rows = await client.fetch_open_interest_history(market["symbol"], period, w_start, OI_PAGE, {"until": w_end})
            pages += 1
            ts_recv = time.time_ns()
            by_ts: dict[int, OpenInterest] = {}
            for r in rows:
                row = decode(info_of(r), BinanceOpenInterestHist, "openInterestHist")
                if w_start <= row.timestamp <= w_end:
                    by_ts[row.timestamp] = checked(
                        OpenInterest, venue="BINANCE", symbol=market["symbol"], instrument_id=iid,
                        ts_event=row.timestamp * MS, ts_recv=ts_recv, open_interest=row.sum_open_interest,
                        open_interest_value=row.sum_open_interest_value, source="history", period_s=step // 1000)
            rows_so_far += len(by_ts)
            if progress:
                progress(pages, rows_so_far, w_end * MS)
            yield list(by_ts.values())

    async def settled_funding_pages(self, client: Any, market: Market, lo_ms: int, hi_ms: int,
                                    report: Any) -> AsyncIterator[FundingPage]:
        def row(r: Any) -> tuple[int, float, float | None]:
            item = decode(info_of(r), BinanceFundingRate, "fundingRate")
            return item.funding_time, item.funding_rate, blank_none(item.mark_price)

        async for page in forward_funding(client, market, lo_ms, hi_ms, report, FUNDING_PAGE, FUNDING_PAGE, row):
            yield page

    def default_funding_interval_minutes(self, market: Market) -> int:
        return DEFAULT_INTERVAL_MIN

    async def current_funding_interval_minutes(self, client: Any, market: Market) -> int:
        try:
            return (await self.funding_intervals(client, [market["symbol"]])).get(market["symbol"], DEFAULT_INTERVAL_MIN)
        except Exception:  # noqa: BLE001 - the list only names adjusted symbols; absent = 8 h
            return DEFAULT_INTERVAL_MIN

    @staticmethod
    async def funding_intervals(client: Any, symbols: list[str] | None = None) -> dict[str, int]:
        """GET /fapi/v1/fundingInfo: ccxt symbol (its id where ccxt lists no market) -> minutes,
        for the symbols whose interval was adjusted (the others have 8 h)."""
        infos = await client.fetch_funding_intervals(symbols)
        rows = {symbol: decode(info_of(info), BinanceFundingInfo, "fundingInfo") for symbol, info in infos.items()}
        return {symbol: row.funding_interval_hours * 60 for symbol, row in rows.items() if row.funding_interval_hours}
