"""transcripts_days end to end on the box: a desired document carrying the tenant's policy
arrives over real Mosquitto, voxeron-sync applies it and prunes the call turns past the
retention at once; orders and their outbox events stay."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta

import pytest

from appliance.store import desired_state
from sync.contracts.messages import DesiredState, TenantPolicy
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import device_link, wait_until
from tests.integration.sync_box import box_fixture  # noqa: F401 (fixture)
from tests.integration.test_sync_to_cloud import MOSQUITTO, Box, running_sync


def publish_desired(box: Box, payload: bytes) -> None:
    """Retained, as the cloud publishes it, so a box still subscribing gets it too (running_sync
    clears it afterwards)."""
    with contextlib.closing(device_link(MOSQUITTO)) as link:
        link.connect(timeout=5)
        link.publish(DeviceTopics(box.identity.tenant_id, box.identity.device_id).desired,
                     payload, qos=1, retain=True)


def test_a_desired_retention_prunes_old_turns_and_zero_stops_storing_them(
    box: Box, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.sync_downlink")
    now = datetime.now(UTC)
    order = box.submit()
    box.store.record_turn("call_old", "caller", "my address is 1 Elm Street", now - timedelta(days=8))
    box.store.record_turn("call_new", "caller", "a large pizza", now - timedelta(days=1))
    ids = box.identity

    def desired(version: int, days: int) -> bytes:
        return DesiredState(tenant_id=ids.tenant_id, device_id=ids.device_id, version=version,
                            issued_at=now, policy=TenantPolicy(transcripts_days=days),
                            ).model_dump_json().encode()

    def in_force_days() -> int | None:
        with box.store.transaction() as conn:
            applied = desired_state.in_force(conn)
        policy = applied.desired.policy if applied else None
        return policy.transcripts_days if policy else None

    with running_sync(box, MOSQUITTO, report_interval_s=0.5):
        publish_desired(box, desired(1, 7))
        wait_until(lambda: not box.store.turns("call_old"), what="turns past 7 days pruned")
        assert in_force_days() == 7
        assert [t.text for t in box.store.turns("call_new")] == ["a large pizza"]
        publish_desired(box, desired(2, 0))
        wait_until(lambda: not box.store.turns("call_new"), what="every turn pruned")
        assert in_force_days() == 0
        assert box.store.record_turn("call_next", "caller", "hello", datetime.now(UTC)) is False
    assert box.store.calls() == []
    assert [o.order_id for o in box.store.orders()] == [order.order_id]
    with box.store.transaction() as conn:  # acked or not (an ingest may be listening)
        events = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert events == 1
    pruned = [r for r in caplog.records if r.getMessage() == "pruned call turns past the tenant's retention"]
    assert [r.fields["rows"] for r in pruned] == [1, 1]  # type: ignore[attr-defined]
