"""`derivs query KIND SYMBOL`: stored rows out of the catalog (no venue call).

    derivs query oi BTC --since 30d                          # a table, every venue
    derivs query funding BTC -v hyperliquid --format csv --out funding.csv
    derivs query liquidations ETH --since 12h --format json  # JSON lines
    derivs query gaps BTC --format parquet --out gaps.parquet

KIND: oi, funding, liquidations, gaps (columns: `storage/query.py`). Tables and CSV carry `time`
(ISO-8601 UTC) and the exact `ts_event` (UNIX ns); funding rows add the annualized rate and its
8-hour equivalent. Parquet has `time` as a UTC timestamp column (what pandas reads as tz-aware
datetimes). Python: `storage.frames.load_frame`.
"""

from __future__ import annotations

import click
import pyarrow as pa

from actors.topology import VENUE_NAMES
from storage.query import EVENT_KINDS, KINDS, read_series, resolve_ids
from cli.catalogargs import catalog_options, existing_catalog
from cli.output import echo_json_lines, open_out, table_text, write_csv, write_parquet
from cli.timeargs import time_option

FORMATS = ("table", "csv", "json", "parquet")


def series_for(catalog: str, kind: str, symbol: str, venues: tuple[str, ...], since: int | None,
               until: int | None, source: str | None = None) -> pa.Table:
    """The rows of KIND for SYMBOL (none for an instrument stored without such rows); a
    ClickException when the catalog holds nothing under SYMBOL."""
    ids = resolve_ids(catalog, kind, symbol, venues)
    if not ids and any(resolve_ids(catalog, other, symbol, venues) for other in KINDS):
        return read_series(catalog, kind, [], since, until, source)  # a stored instrument without such rows: none
    if not ids:
        raise click.ClickException(f"no stored {kind} for {symbol!r}{' on ' + ', '.join(venues) if venues else ''} "
                                   f"in {catalog} (see `derivs coverage`)")
    try:
        return read_series(catalog, kind, ids, since, until, source)
    except ValueError as exc:  # a source the kind does not have
        raise click.BadParameter(str(exc), param_hint="--source") from None


@click.command("query")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("symbol")
@time_option("since", "Start (inclusive, UTC); default: everything.")
@time_option("until", "End (exclusive, UTC); default: everything.")
@click.option("-v", "--venue", "venues", multiple=True, type=click.Choice(VENUE_NAMES), help="Venue (repeatable).")
@click.option("--settled/--all", "settled_only", default=False, help="Funding: settled history rows only (= --source settled).")
@click.option("--source", default=None, help="Only rows of this origin: oi poll | history | archive; funding live | settled.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--csv", "as_csv", is_flag=True, help="Same as --format csv.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write to FILE (required for parquet).")
@catalog_options
def query_cmd(kind, symbol, since, until, venues, settled_only, source, fmt, as_json, as_csv, out_path, catalog, topology) -> None:  # noqa: ANN001
    """Stored rows of KIND (oi, funding, liquidations, gaps) for SYMBOL, from the catalog only."""
    fmt = "json" if as_json else "csv" if as_csv else fmt
    if fmt == "parquet" and not out_path:
        raise click.BadParameter("parquet needs --out FILE", param_hint="--format")
    root = existing_catalog(catalog, topology)
    if settled_only and kind == "funding":
        source = source or "settled"
    table = series_for(root, kind, symbol, tuple(venues), since, until, source)
    if fmt == "parquet":
        try:
            write_parquet(table, out_path)
        except OSError as exc:
            raise click.ClickException(f"--out {out_path}: cannot write: {exc.strerror or exc}") from None
        click.echo(f"{table.num_rows} rows -> {out_path}", err=True)
        return
    out = open_out(out_path)
    try:
        if fmt == "json":
            echo_json_lines(EVENT_KINDS[kind], table.to_pylist(), file=out)
        elif fmt == "csv":
            write_csv(table, out)
        else:
            click.echo(table_text(table), file=out)
    finally:
        if out_path is not None:
            out.close()
    if fmt == "table" or out_path:
        click.echo(f"{table.num_rows} rows" + (f" -> {out_path}" if out_path else ""), err=True)

