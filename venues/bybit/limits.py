"""What Bybit v5 allows: its request limit, how it says "too many" (`retCode` 10006, HTTP 403),
and the open-interest history it serves (periods). Import-light: the topology checks its
settings against it without loading ccxt.

Limits per IP (Bybit docs, venues.md): 600 requests / 5 s, each weighing 1. `X-Bapi-Limit` and
`X-Bapi-Limit-Status` say how many are left in the window; a refusal is `retCode` 10006 (HTTP 200)
with `X-Bapi-Limit-Reset-Timestamp`, or HTTP 403, a ban of 10 minutes that names no wait.
"""

import time
from typing import Any

from venues.budget import Limit, VenueLimits

# ccxt timeframe names of the periods `/v5/market/open-interest` serves
OI_HISTORY_PERIODS = ("5m", "15m", "30m", "1h", "4h", "1d")
OI_HISTORY_RETENTION_DAYS = None  # back to the listing


def too_many_requests(body: str) -> bool:
    return '"retCode":10006' in body.replace(" ", "")


class BybitLimits(VenueLimits):
    limits = (Limit("IP", 600, 5.0, False),)
    ban_s = 600.0  # Bybit's 403 names no wait: its docs say 10 minutes

    def weights(self, method: str, url: str, body: Any) -> dict[str, float]:
        return {"IP": 1}

    def used(self, headers: dict[str, str]) -> dict[str, float]:
        if "x-bapi-limit-status" not in headers:
            return {}
        return {"IP": float(headers["x-bapi-limit"]) - float(headers["x-bapi-limit-status"])}

    def banned(self, status: int) -> bool:
        return status in (403, 418)

    def refused(self, status: int, body: str) -> bool:
        return status in (418, 429) or too_many_requests(body)

    def reset_in_s(self, headers: dict[str, str], body: str) -> float | None:
        if not too_many_requests(body) or "x-bapi-limit-reset-timestamp" not in headers:
            return None
        return float(headers["x-bapi-limit-reset-timestamp"]) / 1000 - time.time()


LIMITS = BybitLimits()
