"""Fetch current open interest or funding from several venues at once, through the same
adapters and normalizers the collectors use (one code path produces every number).

A venue that fails does not hide the others: each (venue, symbol) becomes either a row or an
error, and the caller decides how to show them.
"""

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.validator import validate_event
from venues import adapter
from venues.base import UnknownSymbol, describe
from messages.events import FundingRate, OpenInterest


@dataclass
class FetchResult:
    rows: list[OpenInterest | FundingRate] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (venue, message)


async def fetch_current(kind: str, venues: Sequence[str], symbols: Sequence[str], urls: dict[str, str] | None) -> FetchResult:
    """kind: "open_interest" or "funding"; urls: venue -> emulator base URL (sandbox) or None."""
    result = FetchResult()
    outcomes = await asyncio.gather(*(_one_venue(kind, v, symbols, (urls or {}).get(v)) for v in venues))
    for rows, errors in outcomes:
        result.rows += rows
        result.errors += errors
    return result


async def _one_venue(kind: str, venue: str, symbols: Sequence[str], url: str | None) -> tuple[list, list]:
    ad = adapter(venue)
    client = ad.client(url)
    errors: list[tuple[str, str]] = []
    try:
        try:
            markets = await client.load_markets()
        except Exception as exc:
            return [], [(ad.venue, f"venue unreachable: {describe(exc)}")]
        chosen = []
        for text in symbols:
            try:
                chosen.append(ad.resolve(markets, text))
            except UnknownSymbol as exc:
                errors.append((ad.venue, str(exc)))
        if not chosen:
            return [], errors
        fetch = ad.fetch_open_interest if kind == "open_interest" else ad.fetch_funding
        try:
            events = await fetch(client, chosen)
        except Exception as exc:
            return [], errors + [(ad.venue, f"fetch failed: {describe(exc)}")]
        rows = []
        for event in events:  # the validator's rules: a bad value is reported, never printed as data
            _, reason = validate_event(event, time.time_ns())
            if reason:
                errors.append((ad.venue, f"{event.symbol}: refused: {reason}"))
            else:
                rows.append(event)
        return rows, errors
    finally:
        await client.close()
