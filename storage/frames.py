"""pandas DataFrames of the catalog, for research (no NautilusTrader needed).

    from storage.frames import load_frame
    oi = load_frame("catalog", "oi", "BTC", since="2026-11-01")           # every venue's BTC perpetual
    funding = load_frame("catalog", "funding", "BTC", since=pd.Timestamp.now(tz="UTC") - pd.Timedelta("30D"))
    liqs = load_frame("catalog", "liquidations", "ETHUSDT-LINEAR.BYBIT")
    oi.pivot_table(index="time", columns="venue", values="open_interest_value")   # USD per venue

Columns: `time` (tz-aware UTC datetime of ts_event), `venue`, `instrument_id`, `ts_event` (UNIX
ns), then the kind's own columns (`storage/query.py`; gaps also get `end`, a datetime of
end_ns). Rows sorted by time. `since` is inclusive, `until` exclusive; each may be UNIX ns, a
datetime or a string pandas reads (a time without zone is UTC).

Without this module, one line reads a whole directory (timestamps are UNIX ns, uint64):

    pd.read_parquet("catalog/data/custom_open_interest").assign(time=lambda d: pd.to_datetime(d.ts_event, utc=True), venue=lambda d: d.instrument_id.str.rsplit(".", n=1).str[-1])
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from storage.query import KINDS, UnknownKind, read_series, resolve_ids

When = int | str | datetime | pd.Timestamp | None


class NotStored(LookupError):
    """The catalog holds nothing under the symbol asked for."""


def to_ns(when: When) -> int | None:
    """UNIX ns of `when` (an int is taken as UNIX ns; naive times are UTC)."""
    if when is None or isinstance(when, int):
        return when
    ts = pd.Timestamp(when)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).value


def load_frame(catalog: Path | str, kind: str, symbol: str, since: When = None, until: When = None,
               venues: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows of `kind` ("oi", "funding", "liquidations", "gaps") for `symbol` as a DataFrame.

    `symbol`: a base coin (BTC: every venue), a venue id (BTCUSDT), or an instrument id;
    `venues`: lower-case venue names to keep. NotStored if no venue has the symbol.
    """
    if kind not in KINDS:
        raise UnknownKind(kind)
    ids = resolve_ids(catalog, kind, symbol, venues)
    if not ids and not any(resolve_ids(catalog, other, symbol, venues) for other in KINDS):
        raise NotStored(f"nothing stored for {symbol!r} in {catalog}")
    frame = read_series(catalog, kind, ids, to_ns(since), to_ns(until)).to_pandas()
    frame.insert(0, "time", pd.to_datetime(frame["ts_event"].astype("int64"), utc=True))
    if kind == "gaps":
        frame.insert(frame.columns.get_loc("end_ns"), "end", pd.to_datetime(frame["end_ns"].astype("int64"), utc=True))
    return frame.reset_index(drop=True)
