"""How every `derivs` command prints: tables with a header row, CSV, JSON lines, Parquet.

**One JSON shape for every `--json`: JSON Lines** - one JSON object per line on stdout, each
with a `kind` naming what it is (`open_interest`, `funding_rate`, `liquidation`, `gap` as the
events are tagged on the bus and by `bin/tap`; `coverage`, `history`, `dead_letter`,
`summary_oi`, ...). Times are integer UNIX nanoseconds (`ts_event`, `*_ns`), values a venue
does not publish are `null`. Errors never go into the JSON: they are lines on stderr and the
exit status is non-zero. A line can be parsed as soon as it arrives, so streams (`derivs
liquidations`) and finite answers (`derivs query`) read the same way.

Tables and CSV show times as ISO-8601 UTC (`time`, milliseconds) and keep the exact UNIX
nanoseconds in their own column (`ts_event`).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import click
import pyarrow as pa
import pyarrow.parquet as pq

from cli.timeargs import iso

PERCENT_COLUMNS = {"rate", "predicted_rate", "rate_8h", "predicted_rate_8h"}  # small fractions per interval
ANNUAL_COLUMNS = {"rate_annualized", "predicted_rate_annualized"}
USD_COLUMNS = {"value", "open_interest_value", "mark_price", "index_price", "price"}


def json_line(kind: str, row: dict[str, Any]) -> str:
    """One JSON Lines object: `kind` first, NaN as null."""
    return json.dumps({"kind": kind, **{k: _finite(v) for k, v in row.items() if k != "kind"}})


def echo_json_lines(kind: str, rows: Iterable[dict[str, Any]], file: TextIO | None = None) -> None:
    for row in rows:
        click.echo(json_line(kind, row), file=file)


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> str:
    """Columns padded to their widest cell under a header row and a rule; the first `left`
    columns are left-aligned, the others (numbers) right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def cell(name: str, value: Any) -> str:
    """A value as a table shows it: rates in percent, USD with separators, ns times as ISO."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name in PERCENT_COLUMNS:
        return f"{value * 100:+.5f}%"
    if name in ANNUAL_COLUMNS:
        return f"{value * 100:+.2f}%"
    if name in USD_COLUMNS:
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int) and name.endswith("_ns") and value > 10**17:
        return iso(value)
    return str(value)


def with_iso_time(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts with `time` (ISO-8601 UTC of ts_event) first; NaN as None."""
    return [{"time": iso(r["ts_event"]), **{k: _finite(v) for k, v in r.items()}} for r in table.to_pylist()]


def table_text(table: pa.Table, left: int = 3) -> str:
    """A pyarrow table of a series as a text table (`time` first, ns kept in `ts_event`); the
    first `left` columns of the table are text."""
    rows = with_iso_time(table)
    headers = ["time", *table.column_names]
    return render_table(headers, [[r["time"], *(cell(c, r[c]) for c in table.column_names)] for r in rows], left=left + 1)


def write_csv(table: pa.Table, out: TextIO) -> None:
    """CSV with a header row; `time` ISO-8601 UTC first, exact ns in `ts_event`; null as empty."""
    writer = csv.DictWriter(out, fieldnames=["time", *table.column_names], lineterminator="\n")
    writer.writeheader()
    writer.writerows(with_iso_time(table))


def write_parquet(table: pa.Table, path: str) -> None:
    """Parquet with `time` as a UTC timestamp column (pandas: tz-aware datetimes) beside ts_event."""
    time_column = table["ts_event"].cast(pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    pq.write_table(table.add_column(0, "time", time_column), path)


def open_out(path: str | None) -> TextIO:
    """`--out FILE` for text formats, else stdout; an error names the path it cannot write."""
    if path is None:
        return sys.stdout
    try:
        return open(path, "w", newline="")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise click.ClickException(f"--out {path}: cannot write: {exc.strerror}") from None
