"""Owns the emulator's copy of Hyperliquid's S3 archive of asset contexts
(`s3://hyperliquid-archive/asset_ctxs/<YYYYMMDD>.csv.lz4`, venues/hyperliquid/archive.py has the
sources of its layout): one LZ4-frame CSV per UTC day, the real header, one row per listed coin
per minute, each row the asset context `metaAndAssetCtxs` serves at that minute (`info.py`'s
`asset_ctx`, the same market model), `time` as `2023-05-20T00:01:00Z`.

    data = day_file(Market(7), day_ms)                  # bytes of asset_ctxs/<day>.csv.lz4
    rows = day_rows(Market(7), day_ms, "BTC")            # [(ts_ms, open_interest, mark_px)]: its ground truth

S3 itself is not emulated here: a test serves these files from a real S3-compatible server.
"""

from __future__ import annotations

from datetime import UTC, datetime

import lz4.frame

from emulator.common import VenueContext
from emulator.ground_truth import GroundTruth
from emulator.hyperliquid.assets import assets as listed_assets
from emulator.hyperliquid.history import listed_ms
from emulator.hyperliquid.info import HyperliquidInfo
from emulator.market import DAY, MIN, Market

HEADER = ("time", "coin", "funding", "open_interest", "prev_day_px", "day_ntl_vlm", "premium", "oracle_px", "mark_px",
          "mid_px", "impact_bid_px", "impact_ask_px")


def _contexts(market: Market, day_ms: int, coins: tuple[str, ...] | None) -> list[tuple[int, str, dict]]:
    """(minute, coin, asset context) of every listed coin, every minute of the day."""
    info = HyperliquidInfo(VenueContext("hyperliquid", market, GroundTruth(None)))
    assets = [a for a in listed_assets(market) if coins is None or a.name in coins]
    return [(t, a.name, info.asset_ctx(a, t)[0]) for t in range(day_ms, day_ms + DAY, MIN)
            for a in assets if t >= listed_ms(market, a.name)]


def day_csv(market: Market, day_ms: int, coins: tuple[str, ...] | None = None) -> str:
    """The CSV text of one day (`coins`: only these; default all listed)."""
    lines = [",".join(HEADER)]
    for t, coin, c in _contexts(market, day_ms, coins):
        stamp = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(",".join([stamp, coin, c["funding"], c["openInterest"], c["prevDayPx"], c["dayNtlVlm"], c["premium"],
                               c["oraclePx"], c["markPx"], c["midPx"], *c["impactPxs"]]))
    return "\n".join(lines) + "\n"


def day_file(market: Market, day_ms: int, coins: tuple[str, ...] | None = None) -> bytes:
    """asset_ctxs/<day>.csv.lz4 as the archive has it: the CSV in an LZ4 frame."""
    return lz4.frame.compress(day_csv(market, day_ms, coins).encode())


def day_rows(market: Market, day_ms: int, coin: str) -> list[tuple[int, float, float]]:
    """What the day's file says of one coin: (ts ms, open_interest, mark_px), oldest first."""
    return [(t, float(c["openInterest"]), float(c["markPx"])) for t, _, c in _contexts(market, day_ms, (coin,))]
