"""Hyperliquid history: settled funding (`fundingHistory`: 500 rows per answer, oldest first,
next startTime = last time + 1; driven by `venues/history.py`). Its API has no open-interest
history: the collector records OI by polling, and the past is only in Hyperliquid's S3 archive of
asset contexts (`archive.py`: one row a minute, AWS credentials needed), read a few days at once.
"""

import time
from collections.abc import AsyncIterator
from typing import Any

from messages.events import OpenInterest, checked
from venues.base import MS, FundingPage, HistoryUnavailable, Market, Progress, VenueAdapter, info_of
from venues.history import forward_funding, in_order
from venues.hyperliquid.limits import OI_HISTORY_PERIODS
from venues.hyperliquid.schemas import HyperliquidFundingHistory
from venues.schemas import decode

PAGE = 500
INTERVAL_MIN = 60  # hourly funding
ARCHIVE_DAYS_AHEAD = 4  # day files downloaded at once


class HyperliquidHistory(VenueAdapter):
    """The history half of `HyperliquidAdapter`."""

    oi_history_periods = OI_HISTORY_PERIODS
    oi_archive_period = "1m"
    no_oi_history = ("its API serves current values only; the mesh's collector records it by polling "
                     "metaAndAssetCtxs - see `derivs coverage`")

    async def oi_history_pages(self, client: Any, market: Market, start_ms: int, end_ms: int, period: str,
                               progress: Progress | None) -> AsyncIterator[list[OpenInterest]]:
        """The S3 archive's rows in [start_ms, end_ms], a day at a time (a day it lacks: nothing)."""
        # imported here: the collectors, which never read the archive, do not load its CSV reader
        from venues.hyperliquid.archive import PERIOD_S, ArchiveUnavailable, AssetCtxsArchive, days_of

        try:
            archive = AssetCtxsArchive()
        except ArchiveUnavailable as exc:
            raise HistoryUnavailable(str(exc)) from None
        coin, iid = self.raw_symbol(market), self.instrument_id(market)  # the archive's `coin`
        days = days_of(start_ms, end_ms)
        pages = rows = 0

        async def day(d: int) -> tuple[int, Any]:
            return d, await archive.day(d, coin)

        try:
            async for d, got in in_order(days, day, ARCHIVE_DAYS_AHEAD):
                ts_recv = time.time_ns()
                kept = [checked(OpenInterest, venue="HYPERLIQUID", symbol=market["symbol"], instrument_id=iid,
                                ts_event=r.ts_ns, ts_recv=ts_recv, open_interest=r.open_interest,
                                open_interest_value=r.open_interest * r.mark_px, source="archive", period_s=PERIOD_S)
                        for r in got or () if start_ms * MS <= r.ts_ns <= end_ms * MS]
                pages, rows = pages + 1, rows + len(kept)
                if progress:
                    progress(pages, rows, min(end_ms, d + 86_400_000 - 1) * MS)
                yield kept
        except ArchiveUnavailable as exc:
            raise HistoryUnavailable(str(exc)) from None

    async def settled_funding_pages(self, client: Any, market: Market, lo_ms: int, hi_ms: int,
                                    report: Any) -> AsyncIterator[FundingPage]:
        def row(r: Any) -> tuple[int, float, float | None]:
            item = decode(info_of(r), HyperliquidFundingHistory, "fundingHistory")
            return item.time, item.funding_rate, None

        async for page in forward_funding(client, market, lo_ms, hi_ms, report, None, PAGE, row):
            yield page

    def default_funding_interval_minutes(self, market: Market) -> int:
        return INTERVAL_MIN
