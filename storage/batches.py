"""A batch of events -> the catalog tables it becomes: grouped per stored series and instrument,
one row per natural key (instrument_id, ts_init), converted by `storage/schema.py`."""

from collections.abc import Iterable

import pyarrow as pa

from messages.events import AnyEvent, FundingRate, Gap, Instrument, Liquidation, OpenInterest
from storage.schema import (CRYPTO_PERPETUAL, FUNDING_RATE_INFO, FUNDING_RATE_UPDATE, FUNDING_SETTLEMENT, GAP, LIQUIDATION,
                            OPEN_INTEREST, crypto_perpetual_table, funding_rate_info_table, funding_rate_update_table,
                            funding_settlement_table, gap_table, liquidation_table, open_interest_table)
from storage.slots import liquidation_content, next_slot, ts_init_of


SETTLEMENT_SERIES = "FundingSettlement"


def series_of(event: AnyEvent) -> str:
    """The stored series an event belongs to: its class name, except that settled funding is a
    series of its own (a live estimate and a settlement of the same instant are two rows)."""
    if type(event) is FundingRate and event.settled:
        return SETTLEMENT_SERIES
    return type(event).__name__


def group_events(events: Iterable[AnyEvent]) -> dict[tuple[str, str], dict[int, AnyEvent]]:
    """Events per (series, instrument id), as {ts_init: event} sorted by ts_init.

    The natural key of a stored row is (instrument_id, ts_init), so of two events with the same
    key the later one in `events` wins (a re-fetch corrects a row). Liquidations never change:
    a different one on a taken slot is another liquidation and tries the next slot.
    """
    latest: dict[tuple[str, str], dict[int, AnyEvent]] = {}
    for event in events:
        by_ts = latest.setdefault((series_of(event), event.instrument_id), {})
        slot = ts_init_of(event)
        if type(event) is Liquidation:
            while slot in by_ts and liquidation_content(by_ts[slot]) != liquidation_content(event):
                slot = next_slot(slot)
        by_ts[slot] = event
    return {key: dict(sorted(by_ts.items())) for key, by_ts in latest.items()}


def group_tables(series: str, instrument_id: str, by_ts: dict[int, AnyEvent]) -> dict[tuple[str, str], pa.Table]:
    """The tables of one `group_events` group, keyed by (directory kind, instrument id). A live
    funding estimate becomes a row in both `funding_rate_update` and `custom_funding_rate_info`,
    a settlement a row in `custom_funding_settlement`."""
    group = list(by_ts.values())
    if series == OpenInterest.__name__:
        return {(OPEN_INTEREST, instrument_id): open_interest_table(group, instrument_id)}
    if series == FundingRate.__name__:
        return {(FUNDING_RATE_UPDATE, instrument_id): funding_rate_update_table(group, instrument_id),
                (FUNDING_RATE_INFO, instrument_id): funding_rate_info_table(group, instrument_id)}
    if series == SETTLEMENT_SERIES:
        return {(FUNDING_SETTLEMENT, instrument_id): funding_settlement_table(group, instrument_id)}
    if series == Instrument.__name__:
        return {(CRYPTO_PERPETUAL, instrument_id): crypto_perpetual_table(group)}
    if series == Liquidation.__name__:
        return {(LIQUIDATION, instrument_id): liquidation_table(group, instrument_id, list(by_ts))}
    if series == Gap.__name__:
        return {(GAP, instrument_id): gap_table(group, instrument_id)}
    raise TypeError(f"the catalog stores no {series} events")


def build_tables(events: Iterable[AnyEvent]) -> dict[tuple[str, str], pa.Table]:
    """All tables a batch of events becomes, keyed by (directory kind, instrument id).

    One table per kind and instrument, rows sorted by ts_init with unique ts_init.
    """
    tables: dict[tuple[str, str], pa.Table] = {}
    for (series, instrument_id), by_ts in group_events(events).items():
        tables.update(group_tables(series, instrument_id, by_ts))
    return tables
