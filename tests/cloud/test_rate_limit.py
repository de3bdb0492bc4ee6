"""Per-tenant rate and concurrency limits: the pure token bucket, the in-process limiter,
and the API answering 429 with Retry-After to one tenant while another is unaffected
(time pinned through the request-time dependency, so nothing here depends on speed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.control.audit import ChangeContext
from cloud.control.auth import Principal
from cloud.control.control_state import ControlPlane, utc_now
from cloud.control.rate_limit import InProcessLimiter, RateLimited, TokenBucket, tenant_limits
from cloud.control.tenant_ca import TenantCaStore
from cloud.control.tenants import Quotas, TenantCreate, create_tenant
from cloud.db import Database
from tests.cloud.control_client import (
    OPS_AUTH,
    envelope,
    new_tenant,
)


def test_token_bucket_spends_its_burst_then_refills_with_time() -> None:
    bucket = TokenBucket(rate=2.0, burst=4.0, tokens=4.0, at=100.0)
    assert [bucket.take(100.0, 2.0, 4.0) for _ in range(4)] == [None] * 4
    assert bucket.take(100.0, 2.0, 4.0) == pytest.approx(0.5)
    assert bucket.take(100.25, 2.0, 4.0) == pytest.approx(0.25)
    assert bucket.take(100.5, 2.0, 4.0) is None
    assert bucket.take(1000.0, 2.0, 4.0) is None  # refills only up to the burst
    assert bucket.tokens == pytest.approx(3.0)
    assert bucket.take(1000.0, 1.0, 1.0) is None  # a lowered quota applies at once
    assert bucket.take(1000.0, 1.0, 1.0) == pytest.approx(1.0)


def test_in_process_limiter_counts_requests_in_flight_per_key() -> None:
    limiter = InProcessLimiter()
    assert limiter.enter("a", 2) and limiter.enter("a", 2)
    assert not limiter.enter("a", 2)
    assert limiter.enter("b", 2)
    limiter.leave("a")
    assert limiter.enter("a", 2)
    assert limiter.take("a", 1.0, 1.0, 5.0) is None and limiter.take("a", 1.0, 1.0, 5.0) == 1.0
    assert limiter.take("b", 1.0, 1.0, 5.0) is None


def test_over_quota_gets_429_with_retry_after_and_others_are_unaffected(
        client: TestClient) -> None:
    noisy = new_tenant(client, "Noisy", quotas={"api_requests_per_s": 1})
    quiet = new_tenant(client, "Quiet", quotas={"api_requests_per_s": 1})
    now = datetime.now(UTC)
    client.app.dependency_overrides[utc_now] = lambda: now  # type: ignore[attr-defined]
    try:
        url = f"{noisy.base}/rollouts"
        assert [client.get(url, headers=noisy.auth).status_code for _ in range(2)] == [200, 200]
        over = client.get(url, headers=noisy.auth)
        env = envelope(over, 429, "rate_limit.exceeded")
        assert over.headers["Retry-After"] == "1"
        assert env.category == "rate_limit" and env.retryable
        assert env.retry_after_s == pytest.approx(1.0)
        assert env.correlation.tenant_id == noisy.tenant_id
        envelope(client.get(f"{noisy.base}/flags", headers=noisy.approver_auth), 429)
        # Another tenant, and ops, still get through at the same instant.
        assert client.get(f"{quiet.base}/rollouts", headers=quiet.auth).status_code == 200
        assert client.get(url, headers=OPS_AUTH).status_code == 200
        later = now + timedelta(seconds=1)
        client.app.dependency_overrides[utc_now] = lambda: later  # type: ignore[attr-defined]
        assert client.get(url, headers=noisy.auth).status_code == 200
        # A raised quota refills at the new rate from the next request on.
        patched = client.patch(f"/api/v1/tenants/{noisy.tenant_id}", headers=OPS_AUTH,
                               json={"quotas": {"api_requests_per_s": 50}})
        assert patched.status_code == 200
        soon = later + timedelta(seconds=0.2)  # about 10 tokens at 50/s
        client.app.dependency_overrides[utc_now] = lambda: soon  # type: ignore[attr-defined]
        assert all(client.get(url, headers=noisy.auth).status_code == 200 for _ in range(5))
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_requests_in_flight_over_the_quota_get_429_until_one_finishes(
        database: Database, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    tenant = create_tenant(database, ChangeContext("test", None, now), TenantCreate(
        name="Busy", quotas=Quotas(api_requests_per_s=1)))
    control = ControlPlane(db=database, cas=TenantCaStore(tmp_path / "ca"),
                           bootstrap_ops_token=None)
    caller = Principal(actor="token:x", token_id="x", tenant_id=tenant.tenant_id,
                       scopes=frozenset({"tenant:read"}))
    limiter = InProcessLimiter()
    first = tenant_limits(control, caller, now, limiter)
    next(first)  # in flight
    second = tenant_limits(control, caller, now + timedelta(seconds=5), limiter)
    with pytest.raises(RateLimited) as refused:
        next(second)
    assert refused.value.status_code == 429 and "concurrent" in refused.value.envelope.message
    first.close()  # the first request finished
    third = tenant_limits(control, caller, now + timedelta(seconds=10), limiter)
    next(third)
    third.close()
