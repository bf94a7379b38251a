"""The state of one coin across venues, from the catalog alone (`derivs summary`).

    from storage.summary import summarize
    s = summarize("catalog", "BTC")            # as of now; at_ns= for another instant
    s.open_interest, s.funding, s.liquidations, s.gaps

- Open interest: per instrument its latest row at or before `at`, in base units and USD, and the
  change of the USD value over 1 h and 24 h: against the latest row at or before (latest - 1 h),
  provided that row is at most a sixth of the horizon older (10 min, 4 h), else unknown. A row
  `venue="ALL"` sums the USD values (and base units: one coin) of every venue; its changes are
  known when every venue's are.
- Funding: per instrument its latest row, with the annualized current and predicted rates.
- Liquidations: per venue and in total, of the last hour and the last day before `at`: count and
  USD value of liquidated longs and shorts.
- Gaps: recorded windows of the coin's instruments that meet the last day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc

from storage.query import KINDS, read_series, resolve_ids
from messages.timeunits import NS

HOUR = 3600 * NS
DAY = 24 * HOUR
HORIZONS = {"1h": HOUR, "24h": DAY}
ALL = "ALL"


@dataclass
class OpenInterestLine:
    venue: str
    instrument_id: str
    ts_event: int | None
    open_interest: float
    open_interest_value: float
    value_before: dict[str, float | None] = field(default_factory=dict)  # horizon -> USD value then

    def change(self, horizon: str) -> float | None:
        """Relative change of the USD value over `horizon` (0.01 = +1 %), None when unknown."""
        before = self.value_before.get(horizon)
        return None if not before else self.open_interest_value / before - 1

    def to_dict(self) -> dict:
        return {"venue": self.venue, "instrument_id": self.instrument_id, "ts_event": self.ts_event,
                "open_interest": self.open_interest, "open_interest_value": self.open_interest_value,
                **{f"value_{h}_ago": self.value_before.get(h) for h in HORIZONS},
                **{f"change_{h}": self.change(h) for h in HORIZONS}}


@dataclass
class LiquidationLine:
    window: str  # "1h" | "24h"
    venue: str  # or ALL
    long_count: int = 0
    long_value: float = 0.0
    short_count: int = 0
    short_value: float = 0.0


@dataclass
class Summary:
    symbol: str
    at_ns: int
    open_interest: list[OpenInterestLine]
    funding: list[dict]
    liquidations: list[LiquidationLine]
    gaps: list[dict]


def summarize(catalog: Path | str, symbol: str, at_ns: int | None = None, venues: tuple[str, ...] = ()) -> Summary:
    """See the module doc. `venues`: lower-case venue names to keep (default: all)."""
    at_ns = time.time_ns() if at_ns is None else at_ns
    ids = {kind: resolve_ids(catalog, kind, symbol, venues) for kind in KINDS}
    return Summary(symbol, at_ns, _open_interest(catalog, ids["oi"], at_ns), _funding(catalog, ids["funding"], at_ns),
                   _liquidations(catalog, ids["liquidations"], at_ns),
                   read_series(catalog, "gaps", ids["gaps"], at_ns - DAY, at_ns + 1).to_pylist())


def _open_interest(catalog: Path | str, ids: list[str], at_ns: int) -> list[OpenInterestLine]:
    lines = []
    for iid in sorted(ids, key=lambda i: i.rsplit(".", 1)[-1]):  # by venue
        rows = read_series(catalog, "oi", [iid], at_ns - DAY - DAY // 6, at_ns + 1).to_pylist()
        if not rows:
            continue
        last = rows[-1]
        line = OpenInterestLine(last["venue"], iid, last["ts_event"], last["open_interest"], last["open_interest_value"])
        for name, horizon in HORIZONS.items():
            target = last["ts_event"] - horizon
            before = [r for r in rows if target - horizon // 6 <= r["ts_event"] <= target]
            line.value_before[name] = before[-1]["open_interest_value"] if before else None
        lines.append(line)
    if len(lines) > 1:
        total = OpenInterestLine(ALL, ALL, max(x.ts_event for x in lines), sum(x.open_interest for x in lines),
                                 sum(x.open_interest_value for x in lines))
        for name in HORIZONS:
            known = [x.value_before[name] for x in lines]
            total.value_before[name] = sum(known) if all(v is not None for v in known) else None
        lines.append(total)
    return lines


def _funding(catalog: Path | str, ids: list[str], at_ns: int) -> list[dict]:
    out = []
    for iid in sorted(ids, key=lambda i: i.rsplit(".", 1)[-1]):  # by venue
        table = read_series(catalog, "funding", [iid], None, at_ns + 1)
        if table.num_rows:
            out.append(table.slice(table.num_rows - 1).to_pylist()[0])
    return out


def _liquidations(catalog: Path | str, ids: list[str], at_ns: int) -> list[LiquidationLine]:
    table = read_series(catalog, "liquidations", ids, at_ns - DAY, at_ns + 1)
    out = []
    for window, span in HORIZONS.items():
        part = table.filter(pc.greater(table["ts_event"], at_ns - span)) if table.num_rows else table
        venues = sorted(set(part["venue"].to_pylist()))
        for venue in [*venues, ALL] if len(venues) != 1 else venues:
            line = LiquidationLine(window, venue)
            for row in part.select(["venue", "side", "value"]).to_pylist():
                if venue in (ALL, row["venue"]):
                    if row["side"] == "LONG":
                        line.long_count, line.long_value = line.long_count + 1, line.long_value + row["value"]
                    else:
                        line.short_count, line.short_value = line.short_count + 1, line.short_value + row["value"]
            out.append(line)
    return out
