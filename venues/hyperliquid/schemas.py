"""Hyperliquid payloads (POST /info by `type`), one struct per request type (an item of its
answer), with Hyperliquid's field names and the constraints the project relies on. Read with
`venues.schemas.decode`. Sources: Hyperliquid API docs; recorded answers in
`tests/fixtures/real/hyperliquid/`.
"""

from typing import Annotated

import msgspec

from venues.schemas import Finite, Schema


class HyperliquidAssetCtx(Schema, frozen=True):
    """`metaAndAssetCtxs`: one coin, its `universe` item merged with its asset context (as ccxt
    keeps it in `info`). No timestamp: the receive time is the event's."""

    name: str
    open_interest: Finite  # coin units
    mark_px: Finite
    funding: Finite  # the current hourly rate
    oracle_px: Finite | None = None


class HyperliquidPredictedFunding(Schema, frozen=True):
    """`predictedFundings`: the "HlPerp" entry of one coin, Hyperliquid's own next settlement."""

    funding_rate: Finite
    next_funding_time: int | None = None  # ms
    funding_interval_hours: Annotated[int, msgspec.Meta(gt=0, le=24)] | None = None


# One `predictedFundings` item: [coin, [[venue, entry], ...]] (entries of other venues are ignored).
PredictedFundingsItem = tuple[str, list[tuple[str, dict | None]]]


class HyperliquidPerp(Schema, frozen=True):
    """`meta`, one `universe` item (ccxt keeps it as `market["info"]`)."""

    STRICT = True
    name: str
    sz_decimals: Annotated[int, msgspec.Meta(ge=0, le=16)]


class HyperliquidFundingHistory(Schema, frozen=True):
    """`fundingHistory`, one settled (hourly) row."""

    funding_rate: Finite
    time: int  # ms
