"""Failed sign-ins, counted per client address and per username in a sliding window.

Kept in memory: the panel runs as one process, and a restart forgetting the counts costs an
attacker a restart, not a bypass.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta

from cartero_common.clock import Clock

_MAX_KEYS = 50_000


class SignInThrottle:
    def __init__(self, clock: Clock, *, max_failures: int, window_seconds: int) -> None:
        self._clock = clock
        self._max = max_failures
        self._window = timedelta(seconds=window_seconds)
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self._window:
            times.popleft()
        return times

    def wait_seconds(self, keys: list[str]) -> int:
        """0 when a sign-in may be tried now; else how long until one may."""
        now = self._clock()
        waits = [0]
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self._max:
                waits.append(math.ceil((times[-self._max] + self._window - now).total_seconds()))
        return max(waits)

    def failed(self, keys: list[str]) -> None:
        now = self._clock()
        for key in keys:
            times = self._recent(key, now)
            times.append(now)
            self._failures.pop(key, None)
            if len(self._failures) >= _MAX_KEYS:
                self._failures.pop(next(iter(self._failures)))
            self._failures[key] = times

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
