"""When a failed ticket may be tried again, and when to give up on it: pure, time passed in.

The failure count and the next attempt time live in the store, so a restarted agent
continues the same backoff instead of hammering a broken printer from the start. Jitter
keeps a box whose printer recovers from sending every held ticket in the same instant;
the random draw is passed in, so tests fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Backoff:
    """Retry delays of a failed ticket: base * 2^(failures-1), capped, then spread by
    +-`jitter` (a fraction of the delay)."""

    base_s: float = 1.0
    cap_s: float = 60.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction of the delay in [0, 1)")

    def delay(self, failures: int) -> timedelta:
        """The delay before jitter."""
        if failures <= 0:
            return timedelta(0)
        return timedelta(seconds=min(self.cap_s, self.base_s * 2 ** min(failures - 1, 32)))

    def next_attempt(self, failures: int, now: datetime, draw: float) -> datetime:
        """When a ticket that has now failed `failures` times may go again; `draw` is a
        uniform random number in [0, 1)."""
        spread = 1 - self.jitter + 2 * self.jitter * draw
        return now + self.delay(failures) * spread

    def due(self, failures: int, last_attempt_at: datetime | None, now: datetime) -> bool:
        """Whether a ticket that failed `failures` times, last at `last_attempt_at`, may go now
        (without jitter)."""
        return last_attempt_at is None or now >= last_attempt_at + self.delay(failures)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff while a ticket keeps failing, dead letter at the `dead_letter_after`-th failure.

    Only failures while the printer said it was ready count: a printer out of paper holds
    tickets without using up their tries."""

    backoff: Backoff = Backoff()
    dead_letter_after: int = 6

    def __post_init__(self) -> None:
        if self.dead_letter_after < 1:
            raise ValueError("dead_letter_after must be at least 1")

    def next_attempt(self, failures: int, retryable: bool, now: datetime,
                     draw: float) -> datetime | None:
        """The next attempt after the `failures`-th failure, or None: give up now."""
        if not retryable or failures >= self.dead_letter_after:
            return None
        return self.backoff.next_attempt(failures, now, draw)
