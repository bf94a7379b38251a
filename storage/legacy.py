"""Files written before a column existed, read as if they had it (issue 15's new columns).

Files written before those columns existed are read through `conform` (called by
`storage/files.py` `read_files`), which derives them: the funding figures exactly from `rate` and the interval; an
open-interest row's `source` from its timestamp (on the 5-minute grid: "history", else "poll", the
rule the catalog used before) with `period_s` 0 for a poll and -1 ("not recorded") for history.
`storage/upgrade.py` rewrites such files once, when a writer opens the catalog.
"""

from collections.abc import Iterable

import pyarrow as pa

from messages.funding import annualized, per_8h

NAN = float("nan")

LEGACY_GRID_NS = 300 * 1_000_000_000  # history rows sat on the 5-minute grid, polls on the venue's clock
PERIOD_NOT_RECORDED = -1


def legacy_oi_source(ts_init: int) -> str:
    """`source` of an open-interest row stored before the column existed."""
    return "history" if ts_init % LEGACY_GRID_NS == 0 else "poll"


def legacy_period_s(source: str) -> int:
    """`period_s` of an open-interest row stored before the column existed."""
    return 0 if source == "poll" else PERIOD_NOT_RECORDED


def _legacy_source(t: pa.Table) -> pa.Array:
    return pa.array([legacy_oi_source(ts) for ts in t["ts_init"].to_pylist()], pa.string())


def _legacy_period(t: pa.Table) -> pa.Array:
    sources = t["source"].to_pylist() if "source" in t.column_names else _legacy_source(t).to_pylist()
    return pa.array([legacy_period_s(s) for s in sources], pa.int64())


def _derived(fn, rate_column: str):  # noqa: ANN001, ANN202
    def column(t: pa.Table) -> pa.Array:
        rates, minutes = t[rate_column].to_pylist(), t["interval_minutes"].to_pylist()
        return pa.array([fn(r if r is not None else NAN, m) for r, m in zip(rates, minutes, strict=True)], pa.float64())
    return column


# How a column that an older file lacks is derived from the columns it has.
LEGACY_COLUMNS = {
    "rate_annualized": _derived(annualized, "rate"),
    "rate_8h": _derived(per_8h, "rate"),
    "predicted_rate_annualized": _derived(annualized, "predicted_rate"),
    "predicted_rate_8h": _derived(per_8h, "predicted_rate"),
    "source": _legacy_source,
    "period_s": _legacy_period,
}


def lacks_columns(names: Iterable[str], schema: pa.Schema) -> list[str]:
    """Columns of `schema` that a file with columns `names` does not have."""
    have = set(names)
    return [n for n in schema.names if n not in have]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` (a stored file's rows) in `schema`: columns in order, cast (Nautilus writes int64
    timestamps), and a column an older file lacks derived by `LEGACY_COLUMNS`."""
    for name in lacks_columns(table.column_names, schema):
        if name not in LEGACY_COLUMNS:
            raise ValueError(f"a stored file lacks column {name!r}, which cannot be derived")
        table = table.append_column(name, LEGACY_COLUMNS[name](table))
    return table.select(schema.names).cast(schema)
