"""Getting the data out (issue 15.4-15.7, 15.9, 15.10), through the real `derivs` CLI over a
catalog built from the sandbox: two days of OI history (Binance, Bybit) and funding history (all
three venues) fetched by `derivs history`, then a short mesh run on the same emulator with
polled OI and funding, liquidations on Binance and Bybit, and a Bybit drop (a recorded gap).

Ground truth: the catalog as NautilusTrader reads it in a fresh process (`ParquetDataCatalog`),
and the emulator's record of what it served.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from storage.coverage import query as catalog_query
from messages.funding import annualized, per_8h
from tests.harness import ROOT, start_emulator, start_mesh, stop_mesh, wait_for, write_topology

NS = 1_000_000_000
HOUR, DAY = 3600 * NS, 86400 * NS
IDS = {"BINANCE": "BTCUSDT-PERP.BINANCE", "BYBIT": "BTCUSDT-LINEAR.BYBIT", "HYPERLIQUID": "BTC-USD-PERP.HYPERLIQUID"}

_READ = r"""
import json, math, sys
from pathlib import Path
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from messages.nautilus import FundingRateInfo, FundingSettlement, Gap, Liquidation, OpenInterest
cat = ParquetDataCatalog(sys.argv[1])
nan = lambda x: None if isinstance(x, float) and math.isnan(x) else x
q = lambda cls: [r.data for r in cat.query(cls)]
print(json.dumps({
  "oi": [[str(r.instrument_id), r.ts_event, r.open_interest, r.open_interest_value] for r in q(OpenInterest)],
  "funding": [[str(r.instrument_id), r.ts_event, r.rate, r.interval_minutes, nan(r.predicted_rate), r.settled] for r in q(FundingRateInfo)]
           + [[str(r.instrument_id), r.ts_event, r.rate, r.interval_minutes, None, True] for r in q(FundingSettlement)],
  "liq": [[str(r.instrument_id), r.ts_event, r.side, r.quantity, r.price, r.value] for r in q(Liquidation)],
  "gaps": [[str(r.instrument_id), r.stream, r.ts_event, r.end_ns, r.reason] for r in q(Gap)],
}))
"""


def derivs(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def ok(*args: str) -> subprocess.CompletedProcess:
    done = derivs(*args)
    assert done.returncode == 0, (args, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def lines(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def post(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as r:
        return json.loads(r.read())


def served_truth(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("research")
    emu, urls, truth_path = start_emulator(tmp)
    ready = tmp / "emulator.json"
    catalog = tmp / "catalog"
    try:
        common = ["--emulator", ready, "--catalog", catalog]
        ok("history", "oi", "BTC", "-v", "binance", "-v", "bybit", "--since", "2d", *common)
        ok("history", "funding", "BTC", "--since", "3d", *common)
        topology = write_topology(tmp, venues={"binance": ["BTC/USDT:USDT"], "bybit": ["BTC/USDT:USDT"],
                                               "hyperliquid": ["BTC/USDC:USDC"]}, oi_s=1.0, funding_s=1.0,
                                  sandbox={"start_emulator": False, "emulator_file": str(ready)})
        topo = yaml.safe_load(topology.read_text())
        for v in topo["venues"]:
            v["liquidations"] = v["venue"] in ("binance", "bybit")
        topology.write_text(yaml.safe_dump(topo))
        logs = tmp / "run" / "logs"
        log = lambda v: (logs / f"collector.{v}.log").read_text() if (logs / f"collector.{v}.log").exists() else ""  # noqa: E731
        proc = start_mesh(topology, "--sandbox")
        try:
            for venue in ("binance", "bybit"):
                wait_for(lambda v=venue: "liquidations: subscribed" in log(v), 60, 0.1, f"{venue} subscription")
                post(urls[venue] + "/_emulator/liquidation_rate?per_second=5")

            def pushed() -> list[dict]:
                return [r for r in served_truth(truth_path) if r.get("kind") == "liquidation" and r["raw_symbol"] == "BTCUSDT"
                        and r["connections"] > 0]

            wait_for(lambda: len(pushed()) >= 15, 30, 0.2, "liquidations pushed")
            drop = post(urls["bybit"] + "/_emulator/drop?refuse_seconds=1.5")
            wait_for(lambda: "subscribed again after" in log("bybit"), 30, 0.2, "Bybit's reconnect")
            wait_for(lambda: sum(r["venue"] == "BYBIT" and r["sent_ns"] > drop["drop_ns"] + 2 * NS for r in pushed()) >= 3,
                     30, 0.2, "liquidations after the reconnect")
            for venue in ("binance", "bybit"):
                post(urls[venue] + "/_emulator/liquidation_rate?per_second=0")
            # polled OI and live funding of every venue are in Parquet (the writer flushes every second)
            for venue, iid in IDS.items():
                wait_for(lambda i=iid: catalog_query(catalog, "funding", i, settled=False), 30, 0.2, f"{venue} live funding")
                wait_for(lambda i=iid: [t for t in (r["ts_event"] for r in catalog_query(catalog, "oi", i)) if t % (300 * NS)],
                         30, 0.2, f"{venue} polled OI")
            stop_mesh(proc, signal.SIGINT, timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        stopped_ns = time.time_ns()
        read = subprocess.run([sys.executable, "-c", _READ, str(catalog)], cwd=ROOT, capture_output=True, text=True,
                              timeout=180)
        assert read.returncode == 0, read.stderr
        yield {"tmp": tmp, "catalog": catalog, "topology": topology, "ready": ready, "urls": urls, "truth": truth_path,
               "nt": json.loads(read.stdout), "stopped_ns": stopped_ns, "drop": drop}
    finally:
        emu.terminate()
        emu.wait(10)


# -- query ---------------------------------------------------------------------------------------------


def test_query_json_of_every_kind_equals_what_nautilus_reads(run):
    nt, cat = run["nt"], run["catalog"]
    oi = lines(ok("query", "oi", "BTC", "--catalog", cat, "--json"))
    assert {r["kind"] for r in oi} == {"open_interest"} and {r["venue"] for r in oi} == set(IDS)
    assert sorted((r["instrument_id"], r["ts_event"], r["open_interest"], r["open_interest_value"]) for r in oi) == \
        sorted(tuple(r) for r in nt["oi"] if r[0] in IDS.values())
    assert [r["ts_event"] for r in oi] == sorted(r["ts_event"] for r in oi)  # one time-ordered series of all venues
    # history rows carry what the venue served
    served = {(r["venue"], r["ts_ms"] * 1_000_000): r for r in served_truth(run["truth"])
              if r.get("kind") == "open_interest_history" and r["raw_symbol"] == "BTCUSDT"}
    hist = [r for r in oi if (r["venue"], r["ts_event"]) in served]
    assert len(hist) >= 2 * 570
    # the rows say where they came from; --source picks them
    assert all(r["source"] == "history" and r["period_s"] == 300 for r in hist)
    assert {r["source"] for r in oi} == {"history", "poll"}
    only_history = lines(ok("query", "oi", "BTC", "--catalog", cat, "--json", "--source", "history"))
    assert only_history == [r for r in oi if r["source"] == "history"] and len(only_history) >= len(hist)
    bad = derivs("query", "oi", "BTC", "--catalog", cat, "--source", "settled")
    assert bad.returncode == 2 and "'settled'" in bad.stderr and "poll" in bad.stderr and "Traceback" not in bad.stderr
    for r in hist:  # one side, base units (Bybit serves both sides: README, units registry)
        t = served[(r["venue"], r["ts_event"])]
        assert r["open_interest"] == t["open_interest" if r["venue"] == "BINANCE" else "single_open_interest"]
        if r["venue"] == "BINANCE":
            assert r["open_interest_value"] == t["open_interest_value"]

    funding = lines(ok("query", "funding", "BTC", "--catalog", cat, "--json"))
    assert {r["kind"] for r in funding} == {"funding_rate"} and {r["venue"] for r in funding} == set(IDS)
    assert sorted((r["instrument_id"], r["ts_event"], r["rate"], r["interval_minutes"], r["predicted_rate"], r["settled"])
                  for r in funding) == sorted(tuple(r) for r in nt["funding"] if r[0] in IDS.values())
    for r in funding:  # comparable across venues: messages/funding.py's figures
        assert r["rate_annualized"] == annualized(r["rate"], r["interval_minutes"])
        assert r["rate_8h"] == per_8h(r["rate"], r["interval_minutes"])
        assert r["predicted_rate_annualized"] == (None if r["predicted_rate"] is None
                                                  else annualized(r["predicted_rate"], r["interval_minutes"]))
        assert r["source"] == ("settled" if r["settled"] else "live")
    assert {r["source"] for r in funding} == {"live", "settled"}
    assert any(r["predicted_rate"] is not None and not r["settled"] for r in funding if r["venue"] == "HYPERLIQUID")
    assert {r["interval_minutes"] for r in funding if r["venue"] == "HYPERLIQUID"} == {60}

    liq = lines(ok("query", "liquidations", "BTCUSDT", "--catalog", cat, "--json"))
    assert {r["kind"] for r in liq} == {"liquidation"} and len(liq) >= 15
    assert sorted((r["instrument_id"], r["ts_event"], r["side"], r["quantity"], r["price"], r["value"]) for r in liq) == \
        sorted(tuple(r) for r in nt["liq"])
    pushed = {(r["venue"], r["ts_ms"] * 1_000_000, r["side"], r["qty"], r["price"]) for r in served_truth(run["truth"])
              if r.get("kind") == "liquidation"}
    assert all((r["venue"], r["ts_event"], r["side"], r["quantity"], r["price"]) in pushed for r in liq)

    gaps = lines(ok("query", "gaps", "BTC", "--catalog", cat, "--json"))
    assert {r["kind"] for r in gaps} == {"gap"}
    assert sorted((r["instrument_id"], r["stream"], r["ts_event"], r["end_ns"], r["reason"]) for r in gaps) == \
        sorted(tuple(g) for g in nt["gaps"] if g[0] in IDS.values())
    drop_ns = run["drop"]["drop_ns"]
    assert any(g["venue"] == "BYBIT" and g["stream"] == "liquidations" and g["ts_event"] <= drop_ns < g["end_ns"] for g in gaps)


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS)) + f".{ns % NS // 1_000_000:03d}Z"


def test_query_table_and_csv_have_a_header_iso_times_and_the_ns(run):
    cat = run["catalog"]
    table = ok("query", "funding", "BTC", "-v", "hyperliquid", "--catalog", cat).stdout.splitlines()
    header = table[0].split()
    assert header[:4] == ["time", "venue", "instrument_id", "ts_event"] and {"rate_annualized", "rate_8h"} <= set(header)
    assert set(table[1]) <= {"-", " "}
    rows = lines(ok("query", "funding", "BTC", "-v", "hyperliquid", "--catalog", cat, "--json"))
    assert len(table) == 2 + len(rows)
    for line, row in zip(table[2:], rows, strict=True):
        cells = line.split()
        assert cells[:4] == [_iso(row["ts_event"]), "HYPERLIQUID", IDS["HYPERLIQUID"], str(row["ts_event"])]
        assert f"{row['rate_annualized'] * 100:+.2f}%" in cells

    out = run["tmp"] / "liq.csv"
    ok("query", "liquidations", "BTC", "--catalog", cat, "--format", "csv", "--out", out)
    csv_rows = pd.read_csv(out, dtype={"ts_event": "uint64"})
    assert list(csv_rows.columns[:4]) == ["time", "venue", "instrument_id", "ts_event"]
    liq = lines(ok("query", "liquidations", "BTC", "--catalog", cat, "--json"))
    assert csv_rows["ts_event"].tolist() == [r["ts_event"] for r in liq]
    assert csv_rows["time"].tolist() == [_iso(r["ts_event"]) for r in liq]
    assert csv_rows["value"].tolist() == [r["value"] for r in liq]
    # on stdout as well
    assert ok("query", "liquidations", "BTC", "--catalog", cat, "--csv").stdout == out.read_text()


def test_parquet_export_load_frame_and_the_documented_one_liner_agree(run):
    from storage.frames import load_frame

    cat = run["catalog"]
    out = run["tmp"] / "oi.parquet"
    ok("query", "oi", "BTC", "--catalog", cat, "--format", "parquet", "--out", out)
    exported = pq.read_table(out).to_pandas()
    frame = load_frame(cat, "oi", "BTC")
    assert str(exported["time"].dtype) == str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert set(frame["venue"]) == set(IDS)
    key = ["time", "venue", "instrument_id", "ts_event", "open_interest", "open_interest_value"]
    pd.testing.assert_frame_equal(exported[key].reset_index(drop=True), frame[key])
    assert (frame["time"] == pd.to_datetime(frame["ts_event"].astype("int64"), utc=True)).all()
    # the one line of the README, verbatim, on this catalog
    readme = (ROOT / "README.md").read_text()
    (one_liner,) = [line for line in readme.splitlines() if line.startswith("pd.read_parquet(")]
    direct = eval(one_liner.replace('"catalog/', f'"{cat}/'), {"pd": pd})  # noqa: S307 - our own README
    direct = direct.sort_values(["ts_event", "instrument_id"]).reset_index(drop=True)
    assert str(direct["time"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(direct[key], frame[key], check_dtype=False)
    # since / until: inclusive / exclusive, any form pandas reads
    t = int(frame["ts_event"].iloc[len(frame) // 2])
    part = load_frame(cat, "oi", "BTC", since=pd.Timestamp(t, tz="UTC"), until=t + HOUR)
    assert part["ts_event"].min() == t and part["ts_event"].max() < t + HOUR
    assert len(part) == ((frame["ts_event"] >= t) & (frame["ts_event"] < t + HOUR)).sum()
    gaps = load_frame(cat, "gaps", "BTC")
    assert (gaps["end"] >= gaps["time"]).all() and len(gaps) == len([g for g in run["nt"]["gaps"] if g[0] in IDS.values()])


# -- summary -----------------------------------------------------------------------------------------


def test_summary_equals_the_catalog(run):
    nt, at = run["nt"], run["stopped_ns"]
    got = lines(ok("summary", "BTC", "--catalog", run["catalog"], "--at", str(at // 1_000_000), "--json"))
    at = at // 1_000_000 * 1_000_000
    by_kind = {k: [r for r in got if r["kind"] == k] for k in ("summary_oi", "summary_funding", "summary_liquidations", "gap")}
    assert sum(map(len, by_kind.values())) == len(got)

    oi = {r["venue"]: r for r in by_kind["summary_oi"]}
    assert set(oi) == {*IDS, "ALL"}
    values_before = {}
    for venue in IDS:
        rows = sorted((r[1], r[3], r[2]) for r in nt["oi"] if r[0] == IDS[venue] and r[1] <= at)
        last_ts, last_value, last_oi = rows[-1]
        assert (oi[venue]["ts_event"], oi[venue]["open_interest_value"], oi[venue]["open_interest"]) == (last_ts, last_value, last_oi)
        for name, horizon in (("1h", HOUR), ("24h", DAY)):
            then = [v for ts, v, _ in rows if last_ts - horizon - horizon // 6 <= ts <= last_ts - horizon]
            if venue == "HYPERLIQUID":  # no OI history exists there: polled for seconds only
                assert not then and oi[venue][f"value_{name}_ago"] is None and oi[venue][f"change_{name}"] is None
                continue
            assert then, f"two days of history hold a row {name} before"
            values_before[(venue, name)] = then[-1]
            assert oi[venue][f"value_{name}_ago"] == then[-1]
            assert math.isclose(oi[venue][f"change_{name}"], last_value / then[-1] - 1)
    total = oi["ALL"]
    assert math.isclose(total["open_interest_value"], sum(oi[v]["open_interest_value"] for v in IDS))
    assert total["change_1h"] is None and total["change_24h"] is None  # unknown unless known on every venue
    two = {r["venue"]: r for r in lines(ok("summary", "BTC", "-v", "binance", "-v", "bybit", "--catalog", run["catalog"],
                                           "--at", str(at // 1_000_000), "--json")) if r["kind"] == "summary_oi"}
    total = two["ALL"]
    assert math.isclose(total["open_interest_value"], oi["BINANCE"]["open_interest_value"] + oi["BYBIT"]["open_interest_value"])
    for name in ("1h", "24h"):
        before = values_before[("BINANCE", name)] + values_before[("BYBIT", name)]
        assert math.isclose(total[f"change_{name}"], total["open_interest_value"] / before - 1)

    funding = {r["venue"]: r for r in by_kind["summary_funding"]}
    assert set(funding) == set(IDS)
    for venue, r in funding.items():
        last = max((x for x in nt["funding"] if x[0] == IDS[venue] and x[1] <= at), key=lambda x: x[1])
        assert (r["ts_event"], r["rate"], r["interval_minutes"], r["predicted_rate"], r["settled"]) == tuple(last[1:])
        assert r["rate_annualized"] == annualized(r["rate"], r["interval_minutes"])
    assert funding["HYPERLIQUID"]["predicted_rate_annualized"] == annualized(funding["HYPERLIQUID"]["predicted_rate"], 60)

    liq = {(r["window"], r["venue"]): r for r in by_kind["summary_liquidations"]}
    assert set(liq) == {(w, v) for w in ("1h", "24h") for v in ("BINANCE", "BYBIT", "ALL")}
    for (window, venue), r in liq.items():
        span = HOUR if window == "1h" else DAY
        mine = [x for x in nt["liq"] if at - span < x[1] <= at and (venue == "ALL" or x[0].endswith(venue))]
        for side in ("long", "short"):
            picked = [x for x in mine if x[2] == side.upper()]
            assert r[f"{side}_count"] == len(picked)
            assert math.isclose(r[f"{side}_value"], sum(x[5] for x in picked))
    assert liq[("1h", "ALL")]["long_count"] + liq[("1h", "ALL")]["short_count"] == len(run["nt"]["liq"])

    expected_gaps = sorted(tuple(g) for g in nt["gaps"] if g[0] in IDS.values() and g[3] >= at - DAY and g[2] <= at)
    assert sorted((g["instrument_id"], g["stream"], g["ts_event"], g["end_ns"], g["reason"]) for g in by_kind["gap"]) == expected_gaps

    text = ok("summary", "BTC", "-v", "binance", "-v", "bybit", "--catalog", run["catalog"], "--at", str(at // 1_000_000)).stdout
    for title in ("Open interest", "Funding", "Liquidations", f"Gaps in the last 24h: {len(expected_gaps)}"):
        assert title in text
    all_line = next(line for line in text.splitlines() if line.startswith("ALL "))
    assert f"{total['open_interest_value']:,.0f}" in all_line and f"{total['change_1h'] * 100:+.2f}%" in all_line


# -- plot ---------------------------------------------------------------------------------------------


def test_plot_draws_the_catalog_to_png_and_svg(run):
    from cli.plot import plot_data

    nt, cat = run["nt"], str(run["catalog"])
    png, svg = run["tmp"] / "oi.png", run["tmp"] / "liq.svg"
    done = ok("plot", "oi", "BTC", "--catalog", cat, "--out", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    drawn = plot_data(cat, "oi", "BTC")
    assert f"{sum(len(xs) for xs, _ in drawn.series.values())} points" in done.stderr
    for venue in IDS:
        rows = sorted((r[1], r[3]) for r in nt["oi"] if r[0] == IDS[venue])
        assert list(zip(*drawn.series[venue], strict=True)) == rows
    hyperliquid_from = drawn.series["HYPERLIQUID"][0][0]
    assert drawn.series["ALL"][0] and min(drawn.series["ALL"][0]) >= hyperliquid_from  # where every venue has a value
    history = plot_data(cat, "oi", "BTC", venues=("binance",), source="history")  # the 5-minute buckets only
    binance = sorted((r[1], r[3]) for r in nt["oi"] if r[0] == IDS["BINANCE"])
    served = {r["ts_ms"] * 1_000_000 for r in served_truth(run["truth"])
              if r.get("kind") == "open_interest_history" and r["venue"] == "BINANCE" and r["raw_symbol"] == "BTCUSDT"}
    assert list(zip(*history.series["BINANCE"], strict=True)) == [r for r in binance if r[0] in served]
    assert len(history.series["BINANCE"][0]) < len(binance)
    two = plot_data(cat, "oi", "BTC", venues=("binance", "bybit"))
    assert len(two.series["ALL"][0]) > 40
    for drawn_sum, venues in ((drawn, IDS), (two, ("BINANCE", "BYBIT"))):
        for x, y in zip(*drawn_sum.series["ALL"], strict=True):  # the sum of each venue's latest value at that instant
            latest = [max((r for r in nt["oi"] if r[0] == IDS[v] and r[1] <= x), key=lambda r: r[1])[3] for v in venues]
            assert math.isclose(y, sum(latest))

    ok("plot", "liquidations", "BTC", "--catalog", cat, "--interval", "1s", "--out", svg)
    head = svg.read_text()[:400]
    assert head.startswith("<?xml") and "<svg" in head and svg.stat().st_size > 10_000
    drawn = plot_data(cat, "liquidations", "BTC", interval_ns=NS)
    for side in ("LONG", "SHORT"):
        starts, values = drawn.series[side]
        assert math.isclose(sum(values), sum(r[5] for r in nt["liq"] if r[2] == side))
        for start, value in zip(starts, values, strict=True):
            assert math.isclose(value, sum(r[5] for r in nt["liq"] if r[2] == side and start <= r[1] < start + NS), abs_tol=1e-6)
    assert sorted(drawn.gaps) == sorted((g[2], g[3]) for g in nt["gaps"] if g[0] in IDS.values() and g[1] == "liquidations")
    assert drawn.gaps

    funding = plot_data(cat, "funding", "BTC")
    assert list(zip(*funding.series["HYPERLIQUID"], strict=True)) == \
        sorted((r[1], annualized(r[2], r[3])) for r in nt["funding"] if r[0] == IDS["HYPERLIQUID"])

    bad = derivs("plot", "oi", "BTC", "--catalog", cat, "--out", run["tmp"] / "oi.jpg")
    assert bad.returncode == 2 and "must be .png or .svg" in bad.stderr and "Traceback" not in bad.stderr


# -- the same options everywhere, errors ----------------------------------------------------------------


def test_since_until_take_durations_epoch_ms_and_dates(run):
    cat = run["catalog"]
    every = lines(ok("query", "oi", "BTC", "-v", "binance", "--catalog", cat, "--json"))
    grid = [r["ts_event"] for r in every if r["ts_event"] % (300 * NS) == 0]
    since, until = grid[10], grid[20]
    by_ms = lines(ok("query", "oi", "BTC", "-v", "binance", "--catalog", cat, "--json",
                     "--since", str(since // 1_000_000), "--until", str(until // 1_000_000)))
    assert [r["ts_event"] for r in by_ms] == [r["ts_event"] for r in every if since <= r["ts_event"] < until]
    by_date = lines(ok("query", "oi", "BTC", "-v", "binance", "--catalog", cat, "--json",
                       "--since", _iso(since), "--until", _iso(until)))
    assert by_date == by_ms
    before = time.time_ns()
    recent = lines(ok("query", "oi", "BTC", "-v", "binance", "--catalog", cat, "--json", "--since", "12h"))
    after = time.time_ns()
    assert recent == [r for r in every if r["ts_event"] >= before - 12 * HOUR] or \
        recent == [r for r in every if r["ts_event"] >= after - 12 * HOUR]
    assert 100 < len(recent) < len(every)
    bad = derivs("query", "oi", "BTC", "--catalog", cat, "--since", "12x")
    assert bad.returncode == 2 and "'12x' is not a date or datetime" in bad.stderr and "30d" in bad.stderr
    seconds = derivs("summary", "BTC", "--catalog", cat, "--at", "1764547200")
    assert seconds.returncode == 2 and "epoch seconds? add 000" in seconds.stderr


def test_coverage_and_query_take_topology_and_refuse_a_missing_catalog(run, tmp_path):
    cov = lines(ok("coverage", "--topology", run["topology"], "--json"))
    assert {r["kind"] for r in cov} == {"coverage"} and {"oi", "funding", "liquidations"} <= {r["series"] for r in cov}
    assert ok("query", "oi", "BTC", "--topology", run["topology"], "--json").stdout == \
        ok("query", "oi", "BTC", "--catalog", run["catalog"], "--json").stdout
    elsewhere = write_topology(tmp_path)  # its catalog was never made
    missing = str(tmp_path / "catalog")
    for args in (["coverage"], ["query", "oi", "BTC"], ["summary", "BTC"], ["plot", "oi", "BTC", "--out", tmp_path / "x.png"]):
        for where in (["--topology", elsewhere], ["--catalog", missing]):
            done = derivs(*args, *where)
            assert done.returncode == 1, (args, done.stdout)
            assert f"catalog {missing}: no such directory" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "catalog").exists()
    done = derivs("deadletters", "--topology", elsewhere)  # its run directory neither
    assert done.returncode == 1 and f"run directory {tmp_path / 'run'}" in done.stderr and "no such directory" in done.stderr


def stats(url: str) -> Counter:
    with urllib.request.urlopen(url + "/_emulator/stats", timeout=10) as r:
        return Counter(json.loads(r.read())["requests"])


def test_a_bad_catalog_or_run_directory_is_an_error_before_anything_starts(run, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    before = stats(run["urls"]["binance"])
    done = derivs("history", "oi", "BTC", "-v", "binance", "--since", "1d", "--emulator", run["ready"],
                  "--catalog", blocker / "catalog")
    assert done.returncode == 1 and f"catalog {blocker / 'catalog'}: cannot be created: {blocker} is a file" in done.stderr
    assert "Traceback" not in done.stderr and stats(run["urls"]["binance"]) == before  # nothing was downloaded
    done = derivs("history", "funding", "BTC", "-v", "binance", "--since", "1d", "--emulator", run["ready"], "--catalog", blocker)
    assert done.returncode == 1 and f"catalog {blocker}: is a file" in done.stderr
    assert stats(run["urls"]["binance"]) == before

    if os.geteuid() != 0:  # root writes anywhere access(2) allows: a mode does not stop it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        done = derivs("history", "oi", "BTC", "-v", "binance", "--since", "1d", "--emulator", run["ready"], "--catalog", locked)
        assert done.returncode == 1 and f"catalog {locked}: not writable" in done.stderr
    for field, value, expected in (("catalog", str(blocker / "catalog"), f"cannot be created: {blocker} is a file"),
                                   ("run_dir", str(blocker), "is a file"),
                                   ("catalog", "/sys/derivs-catalog", "cannot be created (/sys:")):
        topology = write_topology(tmp_path, venues={"binance": ["BTC/USDT:USDT"]})
        topo = yaml.safe_load(topology.read_text())
        topo[field] = value
        topology.write_text(yaml.safe_dump(topo))
        launch = subprocess.run([str(ROOT / "bin" / "launch"), "--sandbox", str(topology)], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert launch.returncode == 1, launch.stderr
        assert f"{topology}: {field} {value}: {expected}" in launch.stderr and "Traceback" not in launch.stderr
        assert not (tmp_path / "run").exists()  # nothing was started


def test_head_ends_every_command_quietly(run):
    """`| head -1` on a stream (it would run forever) and on a finite answer."""
    url = run["urls"]["bybit"]
    post(url + "/_emulator/liquidation_rate?per_second=20")
    try:
        started = time.monotonic()
        shell = (f"set -o pipefail; {sys.executable} -m cli liquidations BTC -v bybit --emulator {run['ready']} --json "
                 f"| head -1")
        done = subprocess.run(["bash", "-c", shell], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert json.loads(done.stdout)["kind"] == "liquidation"
        assert done.returncode == 141 and done.stderr == "", done.stderr
        assert time.monotonic() - started < 30
    finally:
        post(url + "/_emulator/liquidation_rate?per_second=0")
    for cmd in ("query liquidations BTC --json", "query oi BTC --csv", "coverage --json", "summary BTC --json"):
        shell = f"{sys.executable} -m cli {cmd} --catalog {run['catalog']} | head -1"
        done = subprocess.run(["bash", "-c", shell], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and len(done.stdout.splitlines()) == 1, (cmd, done.stdout)
        assert "Traceback" not in done.stderr and "Error" not in done.stderr, (cmd, done.stderr)


def test_hyperliquid_takes_a_usdt_name_and_says_so(run):
    done = ok("oi", "DOGEUSDT", "-v", "hyperliquid", "--emulator", run["ready"], "--json")
    (row,) = lines(done)
    assert row["instrument_id"] == "DOGE-USD-PERP.HYPERLIQUID" and row["kind"] == "open_interest"
    assert "DOGEUSDT on HYPERLIQUID is its coin DOGE" in done.stderr
    unknown = derivs("oi", "NOPEUSDT", "-v", "hyperliquid", "--emulator", run["ready"])
    assert unknown.returncode == 1 and "unknown symbol 'NOPEUSDT' on HYPERLIQUID" in unknown.stderr
