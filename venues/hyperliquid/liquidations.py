"""Hyperliquid liquidations: there is no public feed, and this module says why.

Owns the venue's answer to "stream liquidations" (`HyperliquidLiquidations`, the adapter's
`liquidations`): a feed that refuses with the reason every caller shows (the collector logs it
and keeps polling open interest and funding; `derivs liquidations` prints it and exits 1).
"""

from venues.liquidations import NoLiquidationFeed


class HyperliquidLiquidations(NoLiquidationFeed):
    reason = (
        "Hyperliquid has no public liquidation feed: liquidations appear only in per-user fills "
        "(userFills / userEvents of the liquidated account), so they cannot be streamed for a market. "
        "Liquidations are streamed from Binance and Bybit."
    )
