"""Desired state end to end: cloud API -> retained down/desired (real Mosquitto) -> the
box's sync link validates and applies it in its SQLite store -> up/reported -> cloud API.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.store import desired_state
from sync.contracts.messages import DesiredState
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import device_link, wait_until
from tests.integration.sync_box import box_fixture, governed_cloud_fixture  # noqa: F401 (fixtures)
from tests.integration.test_sync_to_cloud import (
    MOSQUITTO,
    Box,
    Cloud,
    running_sync,
)

OVERLAY = yaml.safe_load(
    (Path(__file__).parents[2] / "blueprints" / "tenants" / "demo_pizza.yaml").read_text())
FAST = {"report_interval_s": 0.5}


def overlay(name: str) -> dict[str, Any]:
    return {**OVERLAY, "restaurant": name}


def broken_overlay() -> dict[str, Any]:
    doc = overlay("Broken")
    doc["menu"] = {**doc["menu"], "items": [{**doc["menu"]["items"][0], "options": ["unicorn"]}]}
    return doc


def put_desired(cloud: Cloud, box: Box, **body: Any) -> int:
    ids = box.identity
    got = cloud.api.put(f"/api/v1/tenants/{ids.tenant_id}/devices/{ids.device_id}/desired",
                        json=body)
    assert got.status_code == 200, got.text
    return int(got.json()["version"])


def reported(cloud: Cloud, box: Box) -> dict[str, Any] | None:
    ids = box.identity
    got = cloud.api.get(f"/api/v1/tenants/{ids.tenant_id}/devices/{ids.device_id}/desired")
    return got.json()["reported"] if got.status_code == 200 else None


def wait_reported(cloud: Cloud, box: Box, **expect: Any) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        r = reported(cloud, box)
        return r if r and all(r[k] == v for k, v in expect.items()) else None
    wait_until(check, what=f"reported {expect}")
    result = check()
    assert result is not None
    return result


def in_force_version(box: Box) -> int | None:
    with box.store.transaction() as conn:
        applied = desired_state.in_force(conn)
    return applied.desired.version if applied else None


def applied_rows(box: Box) -> list[int]:
    with contextlib.closing(sqlite3.connect(box.identity.db_path)) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM desired_state ORDER BY version")]


def publish_raw(box: Box, payload: bytes) -> None:
    """As a stray publisher would: not retained, so the cloud's retained version stays."""
    with contextlib.closing(device_link(MOSQUITTO)) as link:
        link.connect(timeout=5)
        link.publish(DeviceTopics(box.identity.tenant_id, box.identity.device_id).desired,
                     payload, qos=1)


def test_desired_state_applies_once_reports_and_ignores_old_versions(
    box: Box, cloud: Cloud, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.sync_downlink")
    with running_sync(box, MOSQUITTO, **FAST):
        v1 = put_desired(cloud, box, blueprint_overlay=overlay("Tony's v1"),
                         flags={"answer_calls": True}, routing={"pos": "none"})
        first = wait_reported(cloud, box, applied_version=v1, status="applied")
        assert v1 == 1 and first["blueprint_hash"] and in_force_version(box) == 1
        desired_v1 = cloud.db.desired_state(box.identity.tenant_id, box.identity.device_id)
        assert desired_v1 is not None
        publish_raw(box, desired_v1.model_dump_json().encode())  # same version again
        v2 = put_desired(cloud, box, blueprint_overlay=overlay("Tony's v2"))
        second = wait_reported(cloud, box, applied_version=v2, status="applied")
        assert second["blueprint_hash"] != first["blueprint_hash"]
        publish_raw(box, desired_v1.model_dump_json().encode())  # an older version
        wait_until(lambda: sum(r.getMessage() == "desired state already seen; ignored"
                               for r in caplog.records) >= 2, what="both stale versions ignored")
        assert applied_rows(box) == [1, 2] and in_force_version(box) == 2
        listed = cloud.api.get(f"/api/v1/tenants/{box.identity.tenant_id}/desired").json()
        assert listed == [{"tenant_id": box.identity.tenant_id,
                           "device_id": box.identity.device_id, "desired_version": 2,
                           "applied_version": 2, "status": "applied", "in_sync": True}]


def test_invalid_overlay_is_rejected_and_the_old_state_stays_in_force(
    box: Box, cloud: Cloud, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.sync_downlink")
    with running_sync(box, MOSQUITTO, **FAST):
        put_desired(cloud, box, blueprint_overlay=overlay("Good"))
        good = wait_reported(cloud, box, applied_version=1, status="applied")
        put_desired(cloud, box, blueprint_overlay=broken_overlay())
        bad = wait_reported(cloud, box, status="rejected", rejected_version=2)
        assert bad["applied_version"] == 1 and bad["blueprint_hash"] == good["blueprint_hash"]
        assert bad["error"]["code"] == "desired.blueprint_invalid"
        assert "unicorn" in bad["error"]["message"]
        assert in_force_version(box) == 1
        # Garbage on the topic is logged and dropped; the next good version still applies.
        publish_raw(box, b"{not json")
        publish_raw(box, b'{"version": 9}')
        put_desired(cloud, box, blueprint_overlay=overlay("Good again"), menu=None)
        wait_reported(cloud, box, applied_version=3, status="applied")
    dropped = [r for r in caplog.records if r.getMessage() == "dropping malformed desired state"]
    assert len(dropped) == 2 and all(r.levelno == logging.ERROR for r in dropped)
    assert applied_rows(box) == [1, 3]


def test_retained_desired_state_reaches_a_box_that_connects_later(
    box: Box, cloud: Cloud,
) -> None:
    ids = box.identity
    url = f"/api/v1/tenants/{ids.tenant_id}/devices/{ids.device_id}/desired"
    anonymous = cloud.api.put(url, json={"flags": {}}, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "auth.missing"
    version = put_desired(cloud, box, flags={"answer_calls": False})
    wait_until(lambda: not cloud.db.unpublished_desired(), what="desired state published")
    assert in_force_version(box) is None
    with running_sync(box, MOSQUITTO, **FAST):
        state = wait_reported(cloud, box, applied_version=version, status="applied")
    assert state["blueprint_hash"] is None  # flags only: the configured blueprint stays
    with box.store.transaction() as conn:
        applied = desired_state.in_force(conn)
    assert applied is not None and applied.desired.answer_calls is False
    assert isinstance(applied.desired, DesiredState) and applied.desired.device_id == ids.device_id
