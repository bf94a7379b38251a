"""A liquidation stream's settings and counters: what to watch (`StreamScope`), how to behave
(`StreamConfig`) and what happened (`StreamStats`). Plain data, shared by the stream's modules."""

from dataclasses import dataclass

import msgspec

from venues.base import Market

REASON_CHARS = 200  # of an exception's first line, in a log line and a gap's reason


class StreamScope(msgspec.Struct, frozen=True, kw_only=True):
    """What a stream watches, and since when data may already be missing.

    - `markets`: ccxt market dicts to watch (`adapter.resolve(...)` results).
    - `all_markets`: watch every market of this list on the venue's all-symbols channel
      (Binance `!forceOrder@arr`); `markets` is then only what the caller configured.
    - `missing_since`: (start_ns, reason): the caller's previous run stopped there; reported as
      a gap that ends at the first subscription acknowledgement.
    """

    markets: list[Market]
    all_markets: list[Market] | None = None
    missing_since: tuple[int, str] | None = None


class StreamConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How a stream behaves; the defaults suit the real venues (tests shorten them)."""

    silence_timeout_s: float = 60.0  # connected, but no frame (not even a pong) this long: reconnect
    ack_timeout_s: float = 10.0  # a subscription not acknowledged within this: reconnect
    backoff_initial_s: float = 0.5  # reconnect delay: doubling from this ...
    backoff_max_s: float = 30.0  # ... up to this, times 0.5-1.0 (full jitter)
    stable_after_s: float = 10.0  # a connection healthy this long resets the backoff
    # replace the connection at this age (hole-free with a client factory); UNSET: the venue's
    # own limit (Binance 24 h), None: never
    max_connection_age_s: float | None | msgspec.UnsetType = msgspec.UNSET
    dedup_window_s: float = 60.0  # rotation overlaps last seconds; memory grows with rate x window


@dataclass
class StreamStats:
    connects: int = 0  # subscriptions acknowledged
    failures: int = 0  # connections lost or refused
    gaps: int = 0
    rotations: int = 0
    received: int = 0  # liquidations parsed from the venue's messages
    delivered: int = 0  # passed to on_event
    duplicates: int = 0
    skipped: int = 0  # rows the venue's parser refused (reason logged at DEBUG)
    last_event_ns: int = 0
