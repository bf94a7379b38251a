"""Bybit v5 history: open interest and settled funding, paged as Bybit serves them
(`venues/history.py` drives; the ranges it hands over are aligned).

- OI (`/v5/market/open-interest`): startTime + endTime + limit=200, then the `nextPageCursor`
  with the same window (the endpoint walks backwards from endTime; a lone startTime is ignored
  by the venue). Rows are two-sided: stored as one side (`one_side`). USD value: Bybit's OI
  history has none, so it is the one-side OI x the mark price at the bucket's instant (the open
  of the mark-price kline that starts there, `/v5/market/mark-price-kline`, 1000 per page).
- Funding (`/v5/market/funding/history`): always startTime AND endTime (startTime alone is an
  error); newest first, 200 per page, next endTime = oldest row - 1.
- Funding interval: the instrument's `fundingInterval` (minutes, instruments-info), else 8 h.
"""

import time
from typing import Any

from messages.events import OpenInterest, checked
from venues.base import MS, FundingRows, Market, Progress, VenueAdapter, info_of
from venues.bybit.limits import OI_HISTORY_PERIODS
from venues.bybit.schemas import (BybitFundingHistory, BybitInstrumentFunding, BybitMarkPriceKlinePage,
                                  BybitOpenInterestPage, one_side)
from venues.history import MAX_PAGES, PERIODS_MS, FundingProgress
from venues.schemas import blank_none, decode

INTERVAL_TIME = {"5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "4h": "4h", "1d": "1d"}
KLINE_INTERVAL = {"5m": "5", "15m": "15", "30m": "30", "1h": "60", "4h": "240", "1d": "D"}
PAGE = 200
KLINE_PAGE = 1000
DEFAULT_INTERVAL_MIN = 8 * 60


class BybitHistory(VenueAdapter):
    """The history half of `BybitAdapter`."""

    oi_history_periods = OI_HISTORY_PERIODS

    async def fetch_oi_history(self, client: Any, market: Market, start_ms: int, end_ms: int, period: str,
                               progress: Progress | None) -> list[OpenInterest]:
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
            if progress:
                # newest first: the fetch has covered [oldest so far, end]
                progress(pages, len(raw), end_ms * MS - (min(raw) if raw else end_ms) * MS + start_ms * MS)
            if not cursor or not rows:
                break
        marks = await self._marks(client, market, category, start_ms, end_ms, period)
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
        return out

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

    async def fetch_settled_funding(self, client: Any, market: Market, lo_ms: int, hi_ms: int,
                                    report: FundingProgress) -> FundingRows:
        raw: FundingRows = {}
        until = hi_ms
        for pages in range(1, MAX_PAGES):
            # startTime and endTime together: a lone startTime is an error on Bybit
            rows = [decode(info_of(r), BybitFundingHistory, "funding/history")
                    for r in await client.fetch_funding_rate_history(market["symbol"], lo_ms, PAGE, {"until": until})]
            for row in rows:
                raw[row.funding_rate_timestamp] = (row.funding_rate, None)
            oldest = min((row.funding_rate_timestamp for row in rows), default=lo_ms)
            report.backward(pages, len(raw), oldest)
            if len(rows) < PAGE:
                break
            until = oldest - 1
            if until < lo_ms:
                break
        return raw

    def default_funding_interval_minutes(self, market: Market) -> int:
        return blank_none(decode(market["info"], BybitInstrumentFunding, "instruments-info").funding_interval) \
            or DEFAULT_INTERVAL_MIN
