"""Hyperliquid history: settled funding (`fundingHistory`: 500 rows per answer, oldest first,
next startTime = last time + 1; driven by `venues/history.py`). Hyperliquid has no open-interest
history: its API serves current values only, so the collector records OI by polling.
"""

from collections.abc import AsyncIterator
from typing import Any

from venues.base import FundingPage, Market, VenueAdapter, info_of
from venues.history import forward_funding
from venues.hyperliquid.limits import OI_HISTORY_PERIODS
from venues.hyperliquid.schemas import HyperliquidFundingHistory
from venues.schemas import decode

PAGE = 500
INTERVAL_MIN = 60  # hourly funding


class HyperliquidHistory(VenueAdapter):
    """The history half of `HyperliquidAdapter`."""

    oi_history_periods = OI_HISTORY_PERIODS
    no_oi_history = ("its API serves current values only; the mesh's collector records it by polling "
                     "metaAndAssetCtxs - see `derivs coverage`")

    async def settled_funding_pages(self, client: Any, market: Market, lo_ms: int, hi_ms: int,
                                    report: Any) -> AsyncIterator[FundingPage]:
        def row(r: Any) -> tuple[int, float, float | None]:
            item = decode(info_of(r), HyperliquidFundingHistory, "fundingHistory")
            return item.time, item.funding_rate, None

        async for page in forward_funding(client, market, lo_ms, hi_ms, report, None, PAGE, row):
            yield page

    def default_funding_interval_minutes(self, market: Market) -> int:
        return INTERVAL_MIN
