"""Bus events -> the NautilusTrader objects the writer stores for it, by the writer's own path.

Events go through `storage.batches.group_events` / `group_tables` (the tables the writer appends
to the catalog) and Nautilus's `ArrowSerializer.deserialize` (what `ParquetDataCatalog.query` decodes
those tables with), so a live object equals the catalog's row of the same event: same class,
same values, same `ts_init`. One event can be several objects (a live funding estimate is a
`FundingRateUpdate` and a `FundingRateInfo`).

One difference remains, by construction: when two liquidations of one instrument hash to the
same sub-millisecond slot (about 1 in 10^6 per pair in one ms) and arrive in different bursts,
the writer moves the second to the next nanosecond (`storage.slots.next_slot`) against the stored
row; live, it keeps its first slot (within one burst it is moved as the writer does).
"""

from collections.abc import Iterable

from nautilus_trader.core.data import Data
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

from messages.events import AnyEvent
from messages.nautilus import (CryptoPerpetual, FundingRateInfo, FundingRateUpdate, FundingSettlement, Gap, Liquidation,
                               OpenInterest)
from storage.batches import group_events, group_tables
from storage.schema import (CRYPTO_PERPETUAL, FUNDING_RATE_INFO, FUNDING_RATE_UPDATE, FUNDING_SETTLEMENT, GAP, LIQUIDATION,
                            OPEN_INTEREST)

# catalog directory kind -> the Nautilus class its rows decode to
DATA_CLASS: dict[str, type] = {
    OPEN_INTEREST: OpenInterest,
    FUNDING_RATE_UPDATE: FundingRateUpdate,
    FUNDING_RATE_INFO: FundingRateInfo,
    FUNDING_SETTLEMENT: FundingSettlement,
    CRYPTO_PERPETUAL: CryptoPerpetual,
    LIQUIDATION: Liquidation,
    GAP: Gap,
}


def to_nautilus(events: Iterable[AnyEvent]) -> list[Data]:
    """The objects the catalog holds for `events` once the writer stored them as one batch:
    grouped per series and instrument (in order of first appearance), sorted by ts_init within
    each. Converting a burst at once costs a fraction of one event at a time (one table each)."""
    return [obj for (series, instrument_id), by_ts in group_events(events).items()
            for (kind, _), table in group_tables(series, instrument_id, by_ts).items()
            for obj in ArrowSerializer.deserialize(DATA_CLASS[kind], table)]


def as_dict(obj: Data) -> dict:
    """An object's stored fields as plain JSON-able values (NaN -> None), the same for a live
    object and a catalog row: what the example logs and the tests compare."""
    values = type(obj).to_dict(obj)
    return {k: (None if isinstance(v, float) and v != v else str(v) if not isinstance(v, (int, float, bool, type(None))) else v)
            for k, v in sorted(values.items())}
