"""Pure parts of the history feature: funding intervals from spacing, Bybit OI sides, incremental
planning against a real catalog directory, date parsing."""

import click
import pytest

from storage.store import CatalogStore
from storage.coverage import coverage, holes_in, missing_ranges, query
from venues.history import row_intervals
from venues.bybit.schemas import BybitTicker, one_side
from venues.schemas import decode
from cli.timeargs import parse_time
from messages.events import FundingRate, OpenInterest

H = 3_600_000
NS = 1_000_000_000
STEP = 300 * NS
T0 = 1_793_491_200 * NS  # 2026-11-01T00:00Z
IID = "BTCUSDT-PERP.BINANCE"


def test_row_intervals_steady_change_and_holes() -> None:
    # 8h run, change to 4h, a hole in the 4h part, change back to 8h
    times = [0, 8 * H, 16 * H, 20 * H, 24 * H, 32 * H, 36 * H, 44 * H, 52 * H]
    got = row_intervals(times)
    assert [got[t] for t in times] == [480, 480, 480, 240, 240, 240, 240, 480, 480]
    # a hole in an 8 h series (16 h gap) does not count as an interval
    assert row_intervals([0, 8 * H, 24 * H, 32 * H])[24 * H] == 480
    assert row_intervals([5 * H]) == {5 * H: None}


def test_bybit_one_sided() -> None:
    # Bybit's openInterest is the sum of both sides on rows of every date (README, units registry)
    def ticker(**fields: str) -> BybitTicker:
        return decode({"symbol": "BTCUSDT", "openInterest": "10", "openInterestValue": "10", "fundingRate": "0.0001",
                       **fields}, BybitTicker)

    t = ticker(singleOpenInterest="4")
    assert one_side(t.single_open_interest, t.open_interest) == 4.0
    t = ticker()
    assert one_side(t.single_open_interest, t.open_interest) == 5.0
    t = ticker(singleOpenInterestValue="3")
    assert one_side(t.single_open_interest_value, t.open_interest_value) == 3.0
    t = ticker(singleOpenInterestValue="")
    assert one_side(t.single_open_interest_value, t.open_interest_value) == 5.0


def _oi(ts: int, source: str = "history") -> OpenInterest:
    return OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id=IID, ts_event=ts, ts_recv=ts,
                        open_interest=1.0, open_interest_value=2.0, source=source, period_s=300 if source == "history" else 0)


def _fr(ts: int, minutes: int = 480, settled: bool = True) -> FundingRate:
    return FundingRate(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id=IID, ts_event=ts, ts_recv=ts, rate=0.0001,
                       interval_minutes=minutes, settled=settled)


def test_missing_ranges_open_interest(tmp_path) -> None:
    end = T0 + 99 * STEP
    assert missing_ranges(tmp_path, "oi", IID, T0, end, STEP) == [(T0, end)]
    stored = [T0 + i * STEP for i in range(100) if not 40 <= i < 43]  # a 3-bucket venue hole
    CatalogStore(tmp_path, durable=False).write([_oi(t) for t in stored] + [_oi(T0 + 7 * STEP + 1234, "poll")])
    assert missing_ranges(tmp_path, "oi", IID, T0, end, STEP) == []  # stored, the hole is the venue's
    assert missing_ranges(tmp_path, "oi", IID, T0, end, STEP, max_hole_steps=0) == [(T0 + 40 * STEP, T0 + 42 * STEP)]
    later = end + 50 * STEP
    assert missing_ranges(tmp_path, "oi", IID, T0 - 10 * STEP, later, STEP) == [
        (T0 - 10 * STEP, T0 - STEP), (end + STEP, later)]
    cov = {(c.kind, c.source): c for c in coverage(tmp_path)}
    assert cov[("oi", "history")].rows == 97 and cov[("oi", "history")].holes == [(T0 + 39 * STEP, T0 + 43 * STEP)]
    assert cov[("oi", "poll")].rows == 1
    assert len(query(tmp_path, "oi", IID, T0, T0 + 10 * STEP)) == 12  # 11 grid rows + the polled one
    assert [r["ts_event"] for r in query(tmp_path, "oi", IID, T0, T0 + 10 * STEP, source="poll")] == [T0 + 7 * STEP + 1234]
    history = query(tmp_path, "oi", IID, T0, T0 + 10 * STEP, source="history")
    assert [r["ts_event"] for r in history] == [T0 + i * STEP for i in range(11)]
    assert {(r["source"], r["period_s"]) for r in history} == {("history", 300)}


def test_a_poll_on_the_grid_is_not_taken_for_history(tmp_path) -> None:
    """The row's source decides, not its timestamp: a poll that lands on a 5-minute boundary
    leaves the history there missing (the rule before the source column would have taken it)."""
    CatalogStore(tmp_path, durable=False).write([_oi(T0), _oi(T0 + STEP, "poll"), _oi(T0 + 2 * STEP)])
    assert missing_ranges(tmp_path, "oi", IID, T0, T0 + 2 * STEP, STEP, max_hole_steps=0) == [(T0 + STEP, T0 + STEP)]
    cov = {(c.kind, c.source): c.rows for c in coverage(tmp_path)}
    assert cov == {("oi", "history"): 2, ("oi", "poll"): 1}
    with pytest.raises(ValueError, match="unknown oi source 'polled'; expected one of: poll, history, archive"):
        query(tmp_path, "oi", IID, source="polled")


def test_missing_ranges_funding(tmp_path) -> None:
    h8 = 8 * 3600 * NS
    end = T0 + 30 * h8
    stored = [T0 + i * h8 for i in range(31) if i != 12]
    CatalogStore(tmp_path, durable=False).write([_fr(t) for t in stored] + [_fr(T0 + 5, settled=False)])
    assert missing_ranges(tmp_path, "funding", IID, T0, end, h8) == []
    assert missing_ranges(tmp_path, "funding", IID, T0 - 3 * h8, end + 2 * h8, h8) == [
        (T0 - 3 * h8, T0 - 1), (end + 1, end + 2 * h8)]
    cov = {(c.kind, c.source): c for c in coverage(tmp_path)}
    assert cov[("funding", "settled")].holes == [(T0 + 11 * h8, T0 + 13 * h8)]
    assert cov[("funding", "live")].rows == 1
    assert len(query(tmp_path, "funding", IID, settled=True)) == 30
    assert query(tmp_path, "funding", IID, source="settled") == query(tmp_path, "funding", IID, settled=True)
    [live] = query(tmp_path, "funding", IID, source="live")
    assert (live["ts_event"], live["source"], live["settled"]) == (T0 + 5, "live", False)
    for r in query(tmp_path, "funding", IID, settled=True):
        assert (r["source"], r["rate_8h"], r["rate_annualized"]) == ("settled", 0.0001, pytest.approx(0.1095))


def test_holes_in() -> None:
    assert holes_in([0, 5, 10, 25, 30], 5) == [(10, 25)]


@pytest.mark.parametrize("text, expected", [
    ("2026-11-01", T0), ("2026-11-01T00:05", T0 + STEP), ("2026-11-01 00:05:00Z", T0 + STEP),
    ("2026-11-01T01:05:00+01:00", T0 + STEP),
])
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text) == expected


def test_parse_time_error_names_value_and_forms() -> None:
    with pytest.raises(click.BadParameter, match=r"'1/11/2026' is not a date or datetime; accepted: YYYY-MM-DD"):
        parse_time("1/11/2026")


def test_two_holes_in_a_row_are_not_a_longer_interval() -> None:
    # hourly rows, 4 h and 6 h missing: 7 h (two 2-hour gaps before it) is still hourly; 5 h, a
    # hole on each side, cannot be told from the first row of a change to 2 h (taken for that)
    times = [0, H, 2 * H, 3 * H, 5 * H, 7 * H, 8 * H, 9 * H]
    got = row_intervals(times)
    assert [got[t] for t in times] == [60, 60, 60, 60, 120, 60, 60, 60]
    # a real change to 2 h: its first row already (gaps 2 h on both sides), and every one after
    times = [0, H, 2 * H, 3 * H, 5 * H, 7 * H, 9 * H, 11 * H]
    got = row_intervals(times)
    assert [got[t] for t in times] == [60, 60, 60, 60, 120, 120, 120, 120]
