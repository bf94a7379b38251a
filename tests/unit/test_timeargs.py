"""--since / --until forms (cli/timeargs.py) and the JSON lines shape (cli/output.py)."""

import json
import math

import click
import pytest

from actors.topology import parse_duration
from cli.output import json_line
from cli.timeargs import iso, parse_time

NOW = 1_796_000_000_123_456_789
NS = 1_000_000_000


@pytest.mark.parametrize("text, expected", [
    ("30d", NOW - 30 * 86400 * NS), ("12h", NOW - 12 * 3600 * NS), ("90m", NOW - 90 * 60 * NS), ("45s", NOW - 45 * NS),
    ("1.5h", NOW - 5400 * NS), (" 2D ", NOW - 2 * 86400 * NS), ("now", NOW),
    ("2y", NOW - 730 * 86400 * NS), ("2w", NOW - 14 * 86400 * NS), ("0.5Y", NOW - int(182.5 * 86400) * NS),
    ("1764547200000", 1_764_547_200_000_000_000), ("1764547200123", 1_764_547_200_123_000_000),
    ("2025-12-01", 1_764_547_200 * NS), ("2025-12-01T01:00+01:00", 1_764_547_200 * NS),
])
def test_every_form_of_a_time(text: str, expected: int) -> None:
    assert parse_time(text, now_ns=NOW) == expected


def test_durations_mean_what_topology_yaml_says() -> None:
    for text in ("30d", "12h", "5m", "7s"):
        assert NOW - parse_time(text, now_ns=NOW) == parse_duration(text) * NS


@pytest.mark.parametrize("text, message", [
    ("12x", "'12x' is not a date or datetime; accepted: YYYY-MM-DD"),
    ("1764547200", "'1764547200' as epoch milliseconds is before 2001-09-09 (epoch seconds? add 000)"),
    ("-3d", "'-3d' is not a date or datetime"),
    ("2yr", "'2yr' is not a date or datetime"),
    ("y", "'y' is not a date or datetime"),
])
def test_a_bad_time_names_the_value_and_the_forms(text: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")) as err:
        parse_time(text, name="--since")
    assert "30d" in str(err.value) and "2y" in str(err.value) and "epoch milliseconds" in str(err.value)


def test_iso_is_utc_with_milliseconds() -> None:
    assert iso(1_764_547_200_123_456_789) == "2025-12-01T00:00:00.123Z" and iso(None) == "-"


def test_a_json_line_has_its_kind_first_and_null_for_nan() -> None:
    line = json_line("open_interest", {"kind": "ignored", "value": math.nan, "x": 1})
    assert line.startswith('{"kind": "open_interest"') and json.loads(line) == {"kind": "open_interest", "value": None, "x": 1}
