"""Bybit v5 history: open interest and settled funding, paged as Bybit serves them
(`venues/history.py` drives; the ranges it hands over are aligned).

- OI (`/v5/market/open-interest`): startTime + endTime + limit=200, then the `nextPageCursor`
  with the same window (the endpoint walks backwards from endTime; a lone startTime is ignored
  by the venue). Rows are two-sided: stored as one side (`one_side`). USD value: Bybit's OI
  history has none, so it is the one-side OI x the mark price at the bucket's instant (the open
  of the mark-price kline that starts there, `/v5/market/mark-price-kline`, 1000 per page).
  Years of it (back to the listing: BTCUSDT 2020) are fetched in windows of 1,000 buckets (5 OI
  pages and 1 kline page each), `OI_WINDOWS_AHEAD` at once and handed on in order; the client's
  request budget (`venues/budget.py`, 600 requests / 5 s) paces them.
- Funding (`/v5/market/funding/history`): always startTime AND endTime (startTime alone is an
  error); newest first, 200 per page, next endTime = oldest row - 1.
- Funding interval: the instrument's `fundingInterval` (minutes, instruments-info), else 8 h.
"""

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from messages.events import OpenInterest, checked
from venues.base import MS, FundingPage, Market, Progress, VenueAdapter, info_of
from venues.bybit.limits import OI_HISTORY_PERIODS
from venues.bybit.schemas import (BybitFundingHistory, BybitInstrumentFunding, BybitMarkPriceKlinePage,
                                  BybitOpenInterestPage, one_side)
from venues.history import MAX_PAGES, PERIODS_MS, FundingProgress, in_order
from venues.schemas import blank_none, decode

INTERVAL_TIME = {"5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "4h": "4h", "1d": "1d"}
KLINE_INTERVAL = {"5m": "5", "15m": "15", "30m": "30", "1h": "60", "4h": "240", "1d": "D"}
PAGE = 200
KLINE_PAGE = 1000
OI_WINDOW = KLINE_PAGE  # buckets per window: one kline page of marks
OI_WINDOWS_AHEAD = 4  # windows fetched at once (a few requests in flight, far below 600 / 5 s)
DEFAULT_INTERVAL_MIN = 8 * 60


class BybitHistory(VenueAdapter):
    """The history half of `BybitAdapter`."""

    oi_history_periods = OI_HISTORY_PERIODS

    async def oi_history_pages(self, client: Any, market: Market, start_ms: int, end_ms: int, period: str,
                               progress: Progress | None) -> AsyncIterator[list[OpenInterest]]:
        step = PERIODS_MS[period]
        windows = [(a, min(a + (OI_WINDOW - 1) * step, end_ms)) for a in range(start_ms, end_ms + 1, OI_WINDOW * step)]
        pages = rows = 0

        async def window(w: tuple[int, int]) -> tuple[list[OpenInterest], int, int]:
            return (*await self._oi_window(client, market, w[0], w[1], period), w[1])

        async with aclosing(in_order(windows, window, OI_WINDOWS_AHEAD)) as fetched:
            async for got, n, w_end in fetched:
                pages, rows = pages + n, rows + len(got)
                if progress:
                    progress(pages, rows, w_end * MS)
                yield got

    async def _oi_window(self, client: Any, market: Market, start_ms: int, end_ms: int,
                         period: str) -> tuple[list[OpenInterest], int]:
        """One window's rows (cursor pages from its end back to its start, then its marks) and the pages it took."""
        category = "linear" if market.get("linear") else "inverse"
        request = {"category": category, "symbol": market["id"], "intervalTime": INTERVAL_TIME[period],
                   "startTime": start_ms, "endTime": end_ms, "limit": PAGE}
        raw: dict[int, float] = {}
        pages = 0
        cursor = None
        while pages < MAX_PAGES:
            answer = await client.publicGetV5MarketOpenInterest({**request, **({"cursor": cursor} if cursor else {})})
            pages += 1
            result = decode(answer, BybitOpenInterestPage, "open-interest").result
            rows = result.rows if result and result.rows else []
            for row in rows:
                if start_ms <= row.timestamp <= end_ms:
                    raw[row.timestamp] = one_side(row.single_open_interest, row.open_interest)
            cursor = result.next_page_cursor if result else None
            if not cursor or not rows:
                break
        marks = await self._marks(client, market, category, start_ms, end_ms, period) if raw else {}
        iid = self.instrument_id(market)
        ts_recv = time.time_ns()
        out = []
        for ts in sorted(raw):
            mark = marks.get(ts)
            if mark is None:  # no candle opening there: the nearest earlier one's close
                earlier = [t for t in marks if t < ts]
                mark = marks[max(earlier)] if earlier else 0.0
            out.append(checked(OpenInterest, venue="BYBIT", symbol=market["symbol"], instrument_id=iid,
                               ts_event=ts * MS, ts_recv=ts_recv, open_interest=raw[ts],
                               open_interest_value=raw[ts] * mark, source="history", period_s=PERIODS_MS[period] // 1000))
        return out, pages

    @staticmethod
    async def _marks(client: Any, market: Market, category: str, start_ms: int, end_ms: int, period: str) -> dict[int, float]:
        """Mark price at each bucket start: the open of the mark-price kline starting there."""
        marks: dict[int, float] = {}
        end = end_ms
        for _ in range(MAX_PAGES):
            answer = await client.publicGetV5MarketMarkPriceKline({
                "category": category, "symbol": market["id"], "interval": KLINE_INTERVAL[period],
                "start": start_ms, "end": end, "limit": KLINE_PAGE,
            })
            result = decode(answer, BybitMarkPriceKlinePage, "mark-price-kline").result
            rows = result.rows if result and result.rows else []
            for candle in rows:
                marks[candle.start] = candle.open
            if len(rows) < KLINE_PAGE:
                break
            end = min(candle.start for candle in rows) - 1
            if end < start_ms:
                break
        return marks

    async def settled_funding_pages(self, client: Any, market: Market, lo_ms: int, hi_ms: int,
                                    report: FundingProgress) -> AsyncIterator[FundingPage]:
        until, total = hi_ms, 0
        for pages in range(1, MAX_PAGES):
            # startTime and endTime together: a lone startTime is an error on Bybit
            rows = [decode(info_of(r), BybitFundingHistory, "funding/history")
                    for r in await client.fetch_funding_rate_history(market["symbol"], lo_ms, PAGE, {"until": until})]
            total += len(rows)
            oldest = min((row.funding_rate_timestamp for row in rows), default=lo_ms)
            report.backward(pages, total, oldest)
            until = oldest - 1
            final = len(rows) < PAGE or until < lo_ms
            yield FundingPage({row.funding_rate_timestamp: (row.funding_rate, None) for row in rows},
                              lo_ms if final else oldest, hi_ms)
            if final:
                break

    def default_funding_interval_minutes(self, market: Market) -> int:
        return blank_none(decode(market["info"], BybitInstrumentFunding, "instruments-info").funding_interval) \
            or DEFAULT_INTERVAL_MIN

