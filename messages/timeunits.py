"""Time units and the text forms of a timestamp (owns `NS`, `MS` and every UTC rendering of an
ns timestamp the mesh prints or names a file after), so a table, a log line and a file name say
a time the same way. Events carry UNIX nanoseconds (messages/events.py)."""

import time

NS = 1_000_000_000  # ns per second
MS = 1_000_000  # ns per millisecond


def utc(ns: int | None, *, millis: bool = False) -> str:
    """`2024-01-02 03:04:05` (UTC; `.678` added with `millis`), "-" for None or 0 (unknown)."""
    if not ns:
        return "-"
    seconds, rest = divmod(ns, NS)
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return f"{text}.{rest // MS:03d}" if millis else text


def iso(ns: int | None, *, millis: bool = False) -> str:
    """`2024-01-02T03:04:05Z` (ISO 8601, UTC, whole seconds; `.678` before the Z with `millis`);
    "-" for None."""
    if ns is None:
        return "-"
    seconds, rest = divmod(int(ns), NS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{rest // MS:03d}Z" if millis else f"{text}Z"


def stamp(seconds: float | None = None) -> str:
    """`20240102T030405Z` (UTC; now by default): a file name's time, sorting as it reads."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))
