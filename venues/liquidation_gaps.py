"""Gap accounting of a liquidation stream: one outage open at a time, reported once it is over.

An outage starts at the last frame received on the lost connection, less `IN_FLIGHT_NS` (anything
after it may be missing), or at the stream's start if it never connected, or where the caller's
previous run stopped (`missing_since`). It ends at the venue's acknowledgement of the new
subscription (nothing can arrive before it), or when the stream stops. Each becomes one
`on_gap(start_ns, end_ns, reason)`.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from messages.timeunits import NS
from venues.liquidation_config import StreamStats

OnGap = Callable[[int, int, str], Awaitable[None]]

# A gap starts this long before the last frame received: frames the venue had already queued
# when the socket died (sent before that frame was *read* here) are lost with it.
IN_FLIGHT_NS = 1 * NS


class Outages:
    """The outage in progress, if any, and the reporting of each one (see module doc)."""

    def __init__(self, on_gap: OnGap, stats: StreamStats, log: Any, missing_since: tuple[int, str] | None) -> None:
        self.on_gap, self.stats, self.log = on_gap, stats, log
        self.current: tuple[int, str] | None = missing_since  # (start_ns, reason)

    @property
    def start_ns(self) -> int | None:
        return self.current[0] if self.current else None

    def begin(self, start_ns: int, reason: str) -> None:
        """A connection was lost: an outage starts, unless one is already open (it goes on)."""
        if self.current is None:
            self.current = (start_ns, reason)

    async def end(self, end_ns: int, suffix: str = "") -> int | None:
        """Report the open outage as a gap ending at `end_ns`; its start, or None if none was open."""
        if self.current is None:
            return None
        (start, reason), self.current = self.current, None
        await self.report(start, end_ns, reason + suffix)
        return start

    async def report(self, start_ns: int, end_ns: int, reason: str) -> None:
        self.stats.gaps += 1
        self.log.warning("liquidations: gap {:.3f} s ({}): events between {} and {} may be missing",
                         (end_ns - start_ns) / NS, reason, start_ns, end_ns)
        try:
            await self.on_gap(start_ns, end_ns, reason)
        except Exception:
            self.log.exception("liquidations: on_gap failed")
