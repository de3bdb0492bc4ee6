"""A tenant PATCH of calls_per_min reaches the box in one sync round: cloud API -> new
desired version retained on down/desired (real Mosquitto) -> the box applies it and the
policy is in force in its store -> up/reported says so."""

from __future__ import annotations

from appliance.store import desired_state
from sync.contracts.messages import TenantPolicy
from tests.integration.cloud_harness import wait_until
from tests.integration.sync_box import box_fixture, governed_cloud_fixture  # noqa: F401 (fixtures)
from tests.integration.test_desired_sync import FAST, put_desired, wait_reported
from tests.integration.test_sync_to_cloud import MOSQUITTO, Box, Cloud, running_sync


def _policy_in_force(box: Box) -> TenantPolicy | None:
    with box.store.transaction() as conn:
        applied = desired_state.in_force(conn)
    return applied.desired.policy if applied else None


def test_policy_patch_is_applied_by_the_box(box: Box, cloud: Cloud) -> None:
    tenant = f"/api/v1/tenants/{box.identity.tenant_id}"
    with running_sync(box, MOSQUITTO, **FAST):
        v1 = put_desired(cloud, box, flags={"answer_calls": True})
        wait_reported(cloud, box, applied_version=v1, status="applied")
        assert _policy_in_force(box) == TenantPolicy(
            calls_per_min=30, transcripts_days=30, recordings_days=0)
        patched = cloud.api.patch(tenant, json={"quotas": {"calls_per_min": 2},
                                                "retention": {"recordings_days": 3}})
        assert patched.status_code == 200, patched.text
        wait_reported(cloud, box, applied_version=v1 + 1, status="applied")
        assert _policy_in_force(box) == TenantPolicy(
            calls_per_min=2, transcripts_days=30, recordings_days=3)
        # A rename changes nothing the box enforces: no new version goes out.
        assert cloud.api.patch(tenant, json={"name": "renamed"}).status_code == 200
        wait_until(lambda: not cloud.db.unpublished_desired(), what="nothing left to publish")
        desired = cloud.db.desired_state(box.identity.tenant_id, box.identity.device_id)
        assert desired is not None and desired.version == v1 + 1
