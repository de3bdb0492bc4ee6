"""Retry timing of failed tickets: pure, so a long outage is checked in microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance.edge.print_backoff import Backoff, RetryPolicy

T0 = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def test_jitter_spreads_the_delay_evenly_around_it() -> None:
    backoff = Backoff(base_s=4, cap_s=60, jitter=0.25)
    assert backoff.next_attempt(1, T0, 0.0) == T0 + timedelta(seconds=3)
    assert backoff.next_attempt(1, T0, 0.5) == T0 + timedelta(seconds=4)
    assert backoff.next_attempt(1, T0, 0.999999) < T0 + timedelta(seconds=5)
    assert backoff.next_attempt(10, T0, 0.5) == T0 + timedelta(seconds=60)  # capped first
    assert Backoff(base_s=4).next_attempt(2, T0, 0.9) == T0 + timedelta(seconds=8)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.0)


def test_policy_dead_letters_at_the_nth_failure_or_at_once_if_not_retryable() -> None:
    policy = RetryPolicy(Backoff(base_s=1, cap_s=8), dead_letter_after=3)
    assert policy.next_attempt(1, True, T0, 0.5) == T0 + timedelta(seconds=1)
    assert policy.next_attempt(2, True, T0, 0.5) == T0 + timedelta(seconds=2)
    assert policy.next_attempt(3, True, T0, 0.5) is None
    assert policy.next_attempt(1, False, T0, 0.5) is None
    with pytest.raises(ValueError, match="dead_letter_after"):
        RetryPolicy(dead_letter_after=0)
