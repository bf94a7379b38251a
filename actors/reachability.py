"""Whether a collector reaches its venue (owns the `unreachable` state a collector reports).

A collector that cannot reach its venue retries forever (with backoff), which is right, but it
must not look healthy meanwhile: its stats carry since when its venue has not answered and the
last error; the coordinator shows it as `unreachable` (`bin/ctl status`) and says so when no
venue answers at all. The collector awaits its venue calls through `Reachability.call`.

Unreachable: UNREACHABLE_AFTER calls in a row that got no answer (refused, timed out, no DNS,
the venue's maintenance answers: ccxt's `NetworkError`). Any answer, even an error the venue
sends (a bad symbol, garbage), means it is reachable again. Rate-limit answers
(`DDoSProtection`, `RateLimitExceeded`) change nothing: the venue answered, but sent no data.
"""

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

import ccxt

from actors.runtime import Stats
from messages.timeunits import NS
from venues.base import describe, now_ns

if TYPE_CHECKING:
    from loguru import Logger

UNREACHABLE_AFTER = 2  # failed calls in a row: one lost request is not an outage
T = TypeVar("T")


RATE_LIMITED = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)  # answered, without data (both NetworkErrors)


def network_failure(exc: BaseException) -> bool:
    """The venue did not answer (as opposed to answering with an error)."""
    return isinstance(exc, ccxt.NetworkError | OSError | TimeoutError) and not isinstance(exc, RATE_LIMITED)


def explain(exc: BaseException) -> str:
    """ccxt's reason, and the connection error under it (ccxt names only the URL for a refused connection)."""
    text = describe(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({str(cause).splitlines()[0][:200]})"
    return text


class Reachability:
    def __init__(self, stats: Stats, log: "Logger"):
        self.stats, self.log = stats, log  # the collector's, bound to its venue
        self.failures = 0  # network failures in a row
        self.first_failure_ns = 0

    async def call(self, call: Awaitable[T]) -> T:
        """Await one venue call, noting whether the venue answered; its result or exception as is."""
        try:
            result = await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed(exc)
            raise
        self.answered()
        return result

    def failed(self, exc: BaseException) -> None:
        if not network_failure(exc):
            if not isinstance(exc, RATE_LIMITED):
                self.answered()
            return
        self.failures += 1
        if self.failures == 1:
            self.first_failure_ns = now_ns()
        self.stats.last_error = explain(exc)
        if self.failures == UNREACHABLE_AFTER:
            self.stats.unreachable_since_ns = self.first_failure_ns
            self.log.error("venue unreachable: nothing is collected until it answers; the last error: {}",
                           self.stats.last_error)

    def answered(self) -> None:
        if self.stats.unreachable_since_ns:
            self.log.warning("venue reachable again after {:.0f}s", (now_ns() - self.stats.unreachable_since_ns) / NS)
        self.failures = 0
        self.stats.unreachable_since_ns = 0
        self.stats.last_error = ""
