"""`derivs plot KIND SYMBOL --out FILE.png|.svg`: a chart of the catalog (matplotlib, no display).

    derivs plot oi BTC --since 2d --out oi.png              # OI in USD per venue and their sum
    derivs plot funding BTC --since 30d --out funding.svg   # annualized funding per venue
    derivs plot liquidations ETH --since 12h --interval 15m --out liq.png   # USD per interval, long vs short

Recorded gaps of the plotted stream are shaded. `plot_data` computes what is drawn (`Drawn`), so
what the picture shows can be checked against the catalog:

- oi: per instrument its stored rows (USD value); "ALL" per interval end, the sum over venues of
  each one's latest value at or before it (only where every venue has one);
- funding: per instrument its stored rows, annualized (`messages/funding.py`);
- liquidations: per interval [start, start + interval), the USD value of liquidated LONG and
  SHORT positions (shorts drawn below zero).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from actors.topology import VENUE_NAMES, parse_duration
from storage.query import read_series, resolve_ids
from cli.catalogargs import catalog_options, existing_catalog
from cli.coverage import step_text
from cli.timeargs import iso, time_option
from messages.timeunits import NS

KINDS = ("oi", "funding", "liquidations")
GAP_STREAMS = {"oi": "open_interest", "funding": "funding", "liquidations": "liquidations"}
INTERVALS_S = (60, 300, 900, 3600, 4 * 3600, 86400)
MAX_BUCKETS = 150
FORMATS = (".png", ".svg")


@dataclass
class Drawn:
    """What a plot shows: per label, the x (UNIX ns) and y values; the shaded gaps."""

    kind: str
    symbol: str
    series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    interval_ns: int | None = None


def interval_for(span_ns: int) -> int:
    """The smallest of 1m, 5m, 15m, 1h, 4h, 1d that cuts `span_ns` into at most MAX_BUCKETS."""
    return next((s * NS for s in INTERVALS_S if span_ns / (s * NS) <= MAX_BUCKETS), INTERVALS_S[-1] * NS)


def plot_data(catalog: str, kind: str, symbol: str, since: int | None = None, until: int | None = None,
              venues: tuple[str, ...] = (), interval_ns: int | None = None, source: str | None = None) -> Drawn:
    """The series and gaps `draw` shows (see the module doc); `source`: only rows of that origin."""
    ids = resolve_ids(catalog, kind, symbol, venues)
    table = read_series(catalog, kind, ids, since, until, source)
    drawn = Drawn(kind, symbol)
    rows = table.to_pylist()
    if kind in ("oi", "funding"):
        column = "open_interest_value" if kind == "oi" else "rate_annualized"
        for iid in sorted(ids, key=lambda i: i.rsplit(".", 1)[-1]):
            mine = [r for r in rows if r["instrument_id"] == iid]
            if mine:
                drawn.series[iid.rsplit(".", 1)[-1]] = ([r["ts_event"] for r in mine], [r[column] for r in mine])
    if rows and (kind == "liquidations" or (kind == "oi" and len(drawn.series) > 1)):
        lo, hi = rows[0]["ts_event"], rows[-1]["ts_event"]
        drawn.interval_ns = interval_ns or interval_for(hi - lo)
        if kind == "oi":
            drawn.series["ALL"] = _sum_at_interval_ends(drawn.series, lo, hi, drawn.interval_ns)
        else:
            drawn.series.update(_per_interval(rows, lo, hi, drawn.interval_ns))
    gap_ids = resolve_ids(catalog, "gaps", symbol, venues)
    for g in read_series(catalog, "gaps", gap_ids, since, until).to_pylist():
        if g["stream"] == GAP_STREAMS[kind]:
            drawn.gaps.append((g["ts_event"], g["end_ns"]))
    return drawn


def _sum_at_interval_ends(series: dict[str, tuple[list[int], list[float]]], lo: int, hi: int,
                          step: int) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for end in range(lo - lo % step + step, hi + step, step):
        end = min(end, hi)
        latest = []
        for ts, values in series.values():
            i = bisect.bisect_right(ts, end)
            latest.append(values[i - 1] if i else None)
        if all(v is not None for v in latest):
            xs.append(end)
            ys.append(sum(latest))
    return xs, ys


def _per_interval(rows: list[dict], lo: int, hi: int, step: int) -> dict[str, tuple[list[int], list[float]]]:
    starts = list(range(lo - lo % step, hi + 1, step))
    sums = {"LONG": [0.0] * len(starts), "SHORT": [0.0] * len(starts)}
    for r in rows:
        sums[r["side"]][(r["ts_event"] - starts[0]) // step] += r["value"]
    return {side: (starts, values) for side, values in sums.items()}


def draw(drawn: Drawn, out: str) -> None:
    """Write the chart to `out` (.png or .svg) with matplotlib's Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    when = lambda xs: [datetime.fromtimestamp(x / NS, UTC) for x in xs]  # noqa: E731
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    try:
        if drawn.kind == "liquidations":
            width = (drawn.interval_ns or NS) / NS / 86400 * 0.9  # days, matplotlib's date unit
            long_x, long_y = drawn.series.get("LONG", ([], []))
            short_x, short_y = drawn.series.get("SHORT", ([], []))
            ax.bar(when(long_x), long_y, width=width, align="edge", color="#c0392b", label="longs liquidated")
            ax.bar(when(short_x), [-v for v in short_y], width=width, align="edge", color="#27ae60", label="shorts liquidated")
            ax.axhline(0, color="black", linewidth=0.6)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):,.0f}"))
            ax.set_ylabel(f"USD per {step_text(drawn.interval_ns or NS)} (shorts below 0)")
        else:
            for label, (xs, ys) in drawn.series.items():
                style = {"color": "black", "linewidth": 2.0} if label == "ALL" else {"linewidth": 1.2}
                ax.plot(when(xs), ys, label="sum of venues" if label == "ALL" else label, **style)
            if drawn.kind == "oi":
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e9:,.2f} B"))
                ax.set_ylabel("open interest (USD)")
            else:
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
                ax.set_ylabel("funding, annualized")
        for i, (a, b) in enumerate(drawn.gaps):
            ax.axvspan(*when([a, max(b, a + NS)]), color="grey", alpha=0.3, label="recorded gap" if i == 0 else None)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.set_xlabel("UTC")
        ax.set_title(f"{drawn.symbol}: {dict(oi='open interest', funding='funding rate', liquidations='liquidations')[drawn.kind]}")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)


@click.command("plot")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("symbol")
@time_option("since", "Start (inclusive, UTC); default: everything.")
@time_option("until", "End (exclusive, UTC); default: everything.")
@click.option("-v", "--venue", "venues", multiple=True, type=click.Choice(VENUE_NAMES), help="Venue (repeatable).")
@click.option("--interval", default=None, help="Bucket of the OI sum and of liquidations (e.g. 5m, 1h); default: fits the span.")
@click.option("--source", default=None, help="Only rows of this origin: oi poll | history; funding live | settled.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The picture: FILE.png or FILE.svg.")
@catalog_options
def plot_cmd(kind, symbol, since, until, venues, interval, source, out_path, catalog, topology) -> None:  # noqa: ANN001
    """Chart KIND (oi, funding, liquidations) of SYMBOL from the catalog, recorded gaps shaded."""
    if Path(out_path).suffix.lower() not in FORMATS:
        raise click.BadParameter(f"{out_path!r}: the picture must be .png or .svg", param_hint="--out")
    try:
        interval_ns = None if interval is None else int(parse_duration(interval, "--interval") * NS)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--interval") from None
    if interval_ns == 0:
        raise click.BadParameter("--interval must be longer than 0", param_hint="--interval")
    root = existing_catalog(catalog, topology)
    try:
        drawn = plot_data(root, kind, symbol, since, until, tuple(venues), interval_ns, source)
    except ValueError as exc:  # a source the kind does not have
        raise click.BadParameter(str(exc), param_hint="--source") from None
    if not drawn.series:
        raise click.ClickException(f"no stored {kind} for {symbol!r} in {root}"
                                   f"{' in that time range' if since or until else ''} (see `derivs coverage`)")
    try:
        draw(drawn, out_path)
    except OSError as exc:
        raise click.ClickException(f"--out {out_path}: cannot write: {exc.strerror or exc}") from None
    points = sum(len(xs) for xs, _ in drawn.series.values())
    click.echo(f"{out_path}: {kind} of {symbol}, {', '.join(drawn.series)}: {points} points, {len(drawn.gaps)} gaps shaded, "
               f"{iso(min(min(xs) for xs, _ in drawn.series.values() if xs))} .. "
               f"{iso(max(max(xs) for xs, _ in drawn.series.values() if xs))}", err=True)
