"""Restart policy of one supervised actor: backoff with jitter and a crash-loop limit.

Erlang/OTP one_for_one: a crashed actor is restarted alone after a growing delay; more than
`max_restarts` crashes within `window_s` marks it failed (said loudly) and the rest keep running.
"""

import random
from collections import deque

from actors.topology import RestartPolicy


class RestartTracker:
    def __init__(self, policy: RestartPolicy):
        self.policy = policy
        self.crashes: deque[float] = deque()
        self.streak = 0  # crashes since the actor last stayed up for reset_after_s

    def on_exit(self, now: float, uptime_s: float) -> float | None:
        """Record a crash at `now` after `uptime_s`; the delay before restarting, or None if failed."""
        p = self.policy
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > p.window_s:
            self.crashes.popleft()
        if len(self.crashes) > p.max_restarts:
            return None
        self.streak = 1 if uptime_s >= p.reset_after_s else self.streak + 1
        delay = min(p.backoff_max_s, p.backoff_initial_s * 2 ** (self.streak - 1))
        return delay * random.uniform(0.8, 1.2)
