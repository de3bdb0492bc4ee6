"""Per-tenant request rate and concurrency limits from the tenant's quotas.

`TokenBucket` is pure (time passed in): it refills at `rate` per second up to `burst`
and says how long to wait when empty. `RateLimiter` is the state behind the limits as a
small interface; `InProcessLimiter` keeps it in this process (one replica), and a shared
store (Redis) can implement the same three methods later so replicas share one budget.
`tenant_limits` applies both to every request a tenant token makes: over the rate it
answers 429 with `Retry-After` and `retry_after_s` in the ErrorEnvelope; more requests
in flight than the quota allows also get 429. Ops tokens are not limited.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from cloud.control.api_errors import ApiError, envelope_response
from cloud.control.auth import PrincipalDep
from cloud.control.control_state import ControlDep, NowDep
from cloud.control.tenants import get_tenant
from sync.contracts.errors import Correlation, ErrorEnvelope

BURST_SECONDS = 2.0
"""A tenant may send this many seconds' worth of its rate at once."""


@dataclass
class TokenBucket:
    """`tokens` left at time `at` (seconds); refills at `rate`/s up to `burst`."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float, rate: float, burst: float) -> float | None:
        """Spend one token at `now`; None if allowed, else seconds until one is available.
        `rate` and `burst` are the current quota (a changed quota applies at once)."""
        self.rate, self.burst = rate, burst
        self.tokens = min(burst, self.tokens + max(0.0, now - self.at) * rate)
        self.at = max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / rate


class RateLimiter(Protocol):
    """Where limiter state lives; in process today, a shared store (Redis) later."""

    def take(self, key: str, rate: float, burst: float, now: float) -> float | None:
        """One request of `key` at `now`: None if allowed, else seconds to wait."""

    def enter(self, key: str, limit: int) -> bool:
        """Count one request in flight for `key`; False (and not counted) over `limit`."""

    def leave(self, key: str) -> None:
        """A request counted by `enter` has finished."""


class InProcessLimiter:
    """Token buckets and in-flight counters in this process, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._in_flight: dict[str, int] = {}

    def take(self, key: str, rate: float, burst: float, now: float) -> float | None:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(rate, burst, burst, now)
            return bucket.take(now, rate, burst)

    def enter(self, key: str, limit: int) -> bool:
        with self._lock:
            if self._in_flight.get(key, 0) >= limit:
                return False
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return True

    def leave(self, key: str) -> None:
        with self._lock:
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)


class RateLimited(ApiError):
    """429 with the wait in both the Retry-After header and the envelope."""

    def __init__(self, tenant_id: str, retry_after_s: float, what: str) -> None:
        super().__init__(429, ErrorEnvelope(
            code="rate_limit.exceeded", category="rate_limit", retryable=True,
            retry_after_s=round(retry_after_s, 3),
            message=f"too many {what} for this tenant; retry after {retry_after_s:.2f} s",
            correlation=Correlation(tenant_id=tenant_id)))
        self.retry_after_s = retry_after_s


async def rate_limited_response(request: Request, exc: RateLimited) -> JSONResponse:
    response = envelope_response(exc.status_code, exc.envelope)
    response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return response


def get_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]


def tenant_limits(control: ControlDep, principal: PrincipalDep, now: NowDep,
                  limiter: LimiterDep) -> Iterator[None]:
    """Request rate (`api_requests_per_s`, burst of BURST_SECONDS) and requests in flight
    (at most `api_requests_per_s`) of the calling tenant token; ops pass unlimited."""
    tenant_id = principal.tenant_id
    if principal.is_ops or tenant_id is None:
        yield
        return
    rate = float(get_tenant(control.db, tenant_id).quotas.api_requests_per_s)
    wait = limiter.take(f"api:{tenant_id}", rate, max(1.0, rate * BURST_SECONDS),
                        now.timestamp())
    if wait is not None:
        raise RateLimited(tenant_id, wait, "requests")
    key = f"in_flight:{tenant_id}"
    if not limiter.enter(key, int(rate)):
        raise RateLimited(tenant_id, 1.0 / rate, "concurrent requests")
    try:
        yield
    finally:
        limiter.leave(key)


TENANT_LIMITS = Depends(tenant_limits)
"""Add to a tenant router's `dependencies` to apply the tenant's limits to its routes."""

LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorEnvelope, "description": "over the tenant's request rate or concurrency "
          "quota; wait Retry-After seconds (also retry_after_s in the envelope)"}}
"""The documented 429 of every route under TENANT_LIMITS."""
