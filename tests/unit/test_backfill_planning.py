"""Backfill settings, planning with rows not flushed yet, and the catalog's writer lock."""

import os
import subprocess
import sys
import time

import pytest

from actors.backfill import merge, subtract
from storage.lock import CatalogLock, CatalogBusy, holder, running_writer
from storage.store import CatalogStore
from storage.coverage import missing_ranges, neighbours
import typing

from venues import VENUE_NAMES, adapter
from actors.topology import OiPeriod, TopologyError, load_topology, parse_duration
from messages.events import FundingRate, OpenInterest

NS = 1_000_000_000
STEP = 300 * NS
T0 = 1_790_000_000 * NS // STEP * STEP
H8 = 8 * 3600 * NS


@pytest.mark.parametrize("text, seconds", [(0, 0.0), (3600, 3600.0), ("90s", 90.0), ("30m", 1800.0), ("12h", 43200.0),
                                           ("2d", 172800.0), ("1.5d", 129600.0), (" 2D ", 172800.0), ("600", 600.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["2x", "-1h", "", "d", "nan", "inf", -5, True])
def test_bad_durations_name_the_value_and_what_is_allowed(bad):
    with pytest.raises(ValueError, match=r"backfill_lookback: .* is not a duration; allowed: a number of seconds"):
        parse_duration(bad, "backfill_lookback")


@pytest.mark.parametrize("venue_yaml, expected", [
    ("{venue: bybit, symbols: [BTC], backfill_lookback: 2weeks}", ["venues[0]", "backfill_lookback: '2weeks' is not a duration", "e.g. '12h', '2d'"]),
    ("{venue: bybit, symbols: [BTC], backfill_oi_period: 2h}", ["backfill_oi_period: '2h' is not served by bybit", "allowed: 5m, 15m, 30m, 1h, 4h, 1d"]),
    ("{venue: binance, symbols: [BTC], backfill_oi_period: 1m}", ["venues[0].backfill_oi_period", "'1m'", "allowed:"]),
    ("{venue: binance, symbols: [BTC], backfill_interval_s: 0}", ["venues[0].backfill_interval_s", "> 0"]),
])
def test_bad_backfill_settings_are_clear_errors(tmp_path, venue_yaml, expected):
    path = tmp_path / "topology.yaml"
    path.write_text(f"venues: [{venue_yaml}]\n")
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    for part in expected:
        assert part in str(err.value), str(err.value)


def test_backfill_defaults_off_and_parses(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("venues: [{venue: binance, symbols: [BTC]}, {venue: hyperliquid, symbols: [BTC], backfill_lookback: 36h}]\n")
    topo, _ = load_topology(path)
    assert topo.venues[0].backfill_lookback_s == 0 and topo.venues[0].backfill_oi_period == "5m"
    assert topo.venues[1].backfill_lookback_s == 36 * 3600


@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_topology_accepts_exactly_the_oi_periods_the_venues_history_fetches(tmp_path, venue):
    """One table per venue (venues/<venue>/limits.py): the topology checks against the adapter's own."""
    fetched = adapter(venue).oi_history_periods  # what venues.history.fetch_open_interest_history accepts
    path = tmp_path / "topology.yaml"
    for period in typing.get_args(OiPeriod):
        path.write_text(f"venues: [{{venue: {venue}, symbols: [BTC], backfill_oi_period: {period}}}]\n")
        if not fetched or period in fetched:  # no OI history at all: the period is never used
            assert load_topology(path)[0].venues[0].backfill_oi_period == period
        else:
            with pytest.raises(TopologyError, match=f"'{period}' is not served by {venue}"):
                load_topology(path)


def test_subtract_and_merge():
    assert subtract([(0, 100)], [(10, 20), (50, 200)]) == [(0, 9), (21, 49)]
    assert subtract([(0, 10), (20, 30)], []) == [(0, 10), (20, 30)]
    assert subtract([(5, 8)], [(0, 100)]) == []
    assert merge([(20, 30), (0, 10), (11, 15), (29, 40)]) == [(0, 15), (20, 40)]


def _oi(ts: int) -> OpenInterest:
    return OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=ts,
                        ts_recv=ts, open_interest=1.0, open_interest_value=2.0, source="history", period_s=300)


def _funding(ts: int) -> FundingRate:
    return FundingRate(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=ts,
                       ts_recv=ts, rate=0.0001, interval_minutes=480, settled=True)


def test_rows_sent_but_not_flushed_count_as_stored(tmp_path):
    catalog = tmp_path / "catalog"
    CatalogStore(catalog, durable=False).write([_oi(T0 + i * STEP) for i in range(10)])
    end = T0 + 29 * STEP
    assert missing_ranges(catalog, "oi", "BTCUSDT-PERP.BINANCE", T0, end, STEP) == [(T0 + 10 * STEP, end)]
    pending = [(T0 + i * STEP, STEP) for i in range(10, 25)]
    assert missing_ranges(catalog, "oi", "BTCUSDT-PERP.BINANCE", T0, end, STEP, also_have=pending) == [(T0 + 25 * STEP, end)]
    # funding: the last pending settlement decides when the next one is due
    CatalogStore(catalog, durable=False).write([_funding(T0 + i * H8) for i in range(3)])
    now = T0 + 6 * H8 + 1
    iid = "BTCUSDT-LINEAR.BYBIT"
    assert missing_ranges(catalog, "funding", iid, T0, now, H8) == [(T0 + 2 * H8 + 1, now)]
    sent = [(T0 + i * H8, H8) for i in (3, 4, 5, 6)]
    assert missing_ranges(catalog, "funding", iid, T0, now, H8, also_have=sent) == []
    assert neighbours(catalog, iid, T0 + 2 * H8 + 1, now) == [T0, T0 + H8, T0 + 2 * H8]  # three before: row_intervals
    assert neighbours(catalog, iid, T0 + 1, T0 + H8 - 1, also_have=sent) == [T0, T0 + H8]


def test_writer_lock_tells_a_running_writer_from_a_cli_and_from_nobody(tmp_path):
    catalog = tmp_path / "catalog"
    assert holder(catalog) is None and running_writer(catalog) is None
    with CatalogLock(catalog, {"kind": "cli"}) as cli:
        assert cli.try_acquire()
        assert holder(catalog)["kind"] == "cli" and running_writer(catalog) is None
        with pytest.raises(CatalogBusy, match="is held by cli"):
            CatalogLock(catalog, {"kind": "writer"}).acquire(timeout_s=0.1)
    assert holder(catalog) is None  # released
    # a writer in another process; when it dies the kernel drops the lock (nothing stale)
    code = ("import sys, time; from storage.lock import CatalogLock; "
            "l = CatalogLock(sys.argv[1], {'kind': 'writer', 'mesh': 'm1', 'ingest': 'ipc://@m1.ingest'}); "
            "l.acquire(5); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(catalog)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        assert proc.stdout.readline().strip() == "held"
        info = running_writer(catalog)
        assert info["mesh"] == "m1" and info["ingest"] == "ipc://@m1.ingest" and info["pid"] == proc.pid
        assert not CatalogLock(catalog, {"kind": "cli"}).try_acquire()
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while holder(catalog) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    with CatalogLock(catalog, {"kind": "cli"}) as again:
        assert running_writer(catalog) is None and again.try_acquire()
