"""`--since` / `--until` for every `derivs` command: one parser, one set of accepted forms.

    2026-11-01, 2026-11-01T13:30[:00], 2026-11-01 13:30, with an optional Z or +HH:MM offset (UTC otherwise)
    now
    30d, 12h, 90m, 45s                     # that long before now (the units of topology.yaml's durations)
    2w, 2y                                 # weeks (7 d) and years (365 d) before now, for long histories
    1764547200000                          # UNIX epoch milliseconds (what the venues' APIs use)

A relative duration is read by `actors.topology.parse_duration`, the parser of topology.yaml's
durations, so `30d` means the same everywhere; `w` and `y` are counted in its days.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from actors.topology import parse_duration
from messages import timeunits
from messages.timeunits import MS, NS

FORMS = ("YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (or with a space) with an optional Z or +HH:MM offset (UTC otherwise), "
         "'now', a duration before now (45s, 90m, 12h, 30d, 2w, 2y; a year = 365 days) or UNIX epoch milliseconds")
_UNITS = "smhd"
_DAYS_PER = {"w": 7, "y": 365}  # longer units, in topology's days
EPOCH_MS_FLOOR = 1_000_000_000_000  # 2001-09-09: anything smaller is a year, or epoch seconds


def parse_time(value: str, *, name: str = "time", now_ns: int | None = None) -> int:
    """One of FORMS -> UNIX ns; click.BadParameter naming the value and the accepted forms otherwise."""
    text = value.strip()
    now_ns = time.time_ns() if now_ns is None else now_ns
    if text.lower() == "now":
        return now_ns
    if text.isdigit():  # a bare integer: epoch milliseconds (a year of 4 digits is not an epoch)
        if int(text) < EPOCH_MS_FLOOR:
            raise click.BadParameter(f"{value!r} as epoch milliseconds is before 2001-09-09 (epoch seconds? add 000); "
                                     f"accepted: {FORMS}", param_hint=name)
        return int(text) * MS
    unit, number = text[-1:].lower(), text[:-1]
    if unit in _DAYS_PER and number.replace(".", "", 1).isdigit():
        text, unit = f"{float(number) * _DAYS_PER[unit]}d", "d"
    if unit in _UNITS and number.replace(".", "", 1).isdigit():
        return now_ns - int(parse_duration(text, name) * NS)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or datetime; accepted: {FORMS}",
                                 param_hint=name) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * NS + parsed.microsecond * 1000


def time_option(name: str, help_text: str, default: str | None = None):  # noqa: ANN201
    """A click option `--<name>` whose value is UNIX ns (None when not given)."""
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        return None if value is None else parse_time(value, name=f"--{param.name}")

    return click.option(f"--{name}", default=default, callback=callback,
                        help=f"{help_text} Dates, datetimes, 'now', a duration before now (12h, 30d, 2w, 2y), or epoch ms.")


def iso(ns: int | None) -> str:
    """UNIX ns -> ISO-8601 UTC with milliseconds (`2026-11-01T13:30:00.000Z`), as tables and CSV print it."""
    return timeunits.iso(ns, millis=True)
