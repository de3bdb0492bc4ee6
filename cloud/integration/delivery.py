"""What one delivery attempt came to, and how an HTTP answer maps to it.

Every outbound adapter (Square, webhooks) returns one of these instead of raising, so the
worker turns it into a lifecycle transition without knowing any vendor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from sync.contracts.errors import ErrorCategory, ErrorEnvelope

Verdict = Literal["delivered", "retryable", "permanent"]


@dataclass(frozen=True)
class Outcome:
    """delivered (with the peer's result), retryable (try again later) or permanent.

    `reached_peer` is False when the attempt decided without asking the peer (a POS cancel
    that waits for its write, or has nothing to cancel): such an outcome says nothing about
    the peer's health, so it never moves the lane's circuit breaker."""

    verdict: Verdict
    result: dict[str, Any] | None = None
    error: ErrorEnvelope | None = None
    reached_peer: bool = True

    @classmethod
    def delivered(cls, result: dict[str, Any]) -> Outcome:
        return cls("delivered", result=result)

    @classmethod
    def nothing_to_do(cls, reason: str) -> Outcome:
        """Done without a request: the peer holds nothing this action would change."""
        return cls("delivered", result={"noop": True, "reason": reason}, reached_peer=False)

    @classmethod
    def not_yet(cls, code: str, message: str) -> Outcome:
        """Try again later without having asked the peer (something else must settle first)."""
        return cls("retryable", reached_peer=False, error=ErrorEnvelope(
            code=code, category="integration", message=message[:500], retryable=True))

    @classmethod
    def failed(cls, verdict: Verdict, code: str, category: ErrorCategory, message: str,
               retry_after_s: float | None = None) -> Outcome:
        return cls(verdict, error=ErrorEnvelope(
            code=code, category=category, message=message[:500],
            retryable=verdict == "retryable", retry_after_s=retry_after_s))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit() or value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_status(status: int, peer: str, detail: str,
                    retry_after: str | None) -> Outcome | None:
    """The failure an HTTP status means (None for 2xx): 429/408/5xx retry, other 4xx never."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return Outcome.failed("retryable", f"{peer}.rate_limited", "rate_limit",
                              f"{peer} asked us to slow down: {detail}",
                              retry_after_seconds(retry_after))
    if status == 408:
        return Outcome.failed("retryable", f"{peer}.timeout", "timeout", f"{peer}: {detail}")
    if status >= 500:
        return Outcome.failed("retryable", f"{peer}.unavailable", "unavailable",
                              f"{peer} answered {status}: {detail}")
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found",
            409: "conflict"}.get(status, "rejected")
    return Outcome.failed("permanent", f"{peer}.{code}", "integration",
                          f"{peer} refused the request ({status}): {detail}")
