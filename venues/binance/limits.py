"""What Binance USDT-M allows: its request limits and weights, how it says "too many", and the
open-interest history it serves (periods, 30 days of retention). Import-light: the topology
checks its settings against it without loading ccxt.

Limits per IP (Binance docs, venues.md): REQUEST_WEIGHT 2400 / min; `/fapi/v1/fundingRate` and
`/fapi/v1/fundingInfo` share 500 / 5 min; `/futures/data/*` 1000 / 5 min. `premiumIndex` weighs 1
with a symbol and 10 without. Its used weight comes back in `X-MBX-USED-WEIGHT-1M`; 429 /
418 (a ban) carry `Retry-After`.
"""

from typing import Any
from urllib.parse import parse_qs, urlsplit

from venues.budget import Limit, VenueLimits

# ccxt timeframe names of the periods `/futures/data/openInterestHist` serves
OI_HISTORY_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
OI_HISTORY_RETENTION_DAYS = 30  # "only the data of the latest 30 days is available"


class BinanceLimits(VenueLimits):
    limits = (Limit("REQUEST_WEIGHT", 2400, 60.0, True), Limit("FUNDING", 500, 300.0, True),
              Limit("DATA", 1000, 300.0, True))

    def weights(self, method: str, url: str, body: Any) -> dict[str, float]:
        parts = urlsplit(url)
        path = parts.path
        if "/futures/data/" in path:
            return {"DATA": 1}
        if path.endswith(("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo")):
            return {"REQUEST_WEIGHT": 1, "FUNDING": 1}
        if path.endswith("/fapi/v1/premiumIndex"):
            return {"REQUEST_WEIGHT": 1 if "symbol" in parse_qs(parts.query) else 10}
        return {"REQUEST_WEIGHT": 1}

    def used(self, headers: dict[str, str]) -> dict[str, float]:
        return {"REQUEST_WEIGHT": float(headers["x-mbx-used-weight-1m"])} if "x-mbx-used-weight-1m" in headers else {}


LIMITS = BinanceLimits()
