"""The tenant's calls-per-minute quota as a rolling window of admitted calls.

A pure object with time passed in (`now` in seconds on any monotonic clock), so the SIP
agent's admission is unit-tested without a clock. The limit is an argument of each check,
not a setting, because the desired state in force may change it between two calls.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class CallRateWindow:
    """Calls admitted in the last `window_s` seconds; a limit of None admits every call,
    0 none. Every admission is counted, limited or not, so a limit that arrives mid-minute
    already sees the calls answered before it."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._admitted: deque[float] = deque()

    def count(self, now: float) -> int:
        """Calls admitted in the window ending at `now`."""
        while self._admitted and self._admitted[0] <= now - self.window_s:
            self._admitted.popleft()
        return len(self._admitted)

    def allows(self, now: float, limit: int | None) -> bool:
        """Whether one more call may be answered at `now` under `limit`."""
        if limit is None:
            self.count(now)  # keeps the window short while unlimited
            return True
        return self.count(now) < limit

    def admit(self, now: float) -> None:
        """Count a call answered at `now` (after `allows` said yes and the call was taken)."""
        self.count(now)
        self._admitted.append(now)
