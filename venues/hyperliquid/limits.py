"""What Hyperliquid allows: its weight limit per `info` request type, and the open-interest history
it serves (none). Import-light: the topology checks its settings against it without loading ccxt.

Limits per IP (Hyperliquid docs, venues.md): weight 1200 / min; an `info` request weighs 20,
2 for the light types below, 60 for `userRole`. A refusal is HTTP 429 without a named wait.
"""

from typing import Any

import msgspec

from venues.budget import Limit, VenueLimits

OI_HISTORY_PERIODS: tuple[str, ...] = ()  # the API serves current open interest only
OI_HISTORY_RETENTION_DAYS = None
LIGHT_INFO = {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}


class HyperliquidLimits(VenueLimits):
    limits = (Limit("WEIGHT", 1200, 60.0, False),)

    def weights(self, method: str, url: str, body: Any) -> dict[str, float]:
        try:
            kind = msgspec.json.decode(body or b"{}").get("type")
        except (msgspec.DecodeError, AttributeError):
            kind = None
        return {"WEIGHT": 2 if kind in LIGHT_INFO else 60 if kind == "userRole" else 20}


LIMITS = HyperliquidLimits()
