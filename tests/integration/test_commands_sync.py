"""Cloud commands end to end over real Mosquitto: issued through the cloud API (or by hand
as a redelivery would look), applied on the box once per command id, outcome reported."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

from appliance.store import desired_state
from sync.contracts.messages import Command
from sync.ids import new_id
from sync.topics import DeviceTopics
from tests.integration.cloud_harness import device_link, wait_until
from tests.integration.sync_box import box_fixture, governed_cloud_fixture  # noqa: F401 (fixtures)
from tests.integration.test_sync_to_cloud import (
    MOSQUITTO,
    Box,
    Cloud,
    running_sync,
)

FAST = {"report_interval_s": 0.5}


def publish_commands(box: Box, *payloads: bytes) -> None:
    """Deliver raw payloads on the box's down/commands, as a redelivery or a bad sender would."""
    topic = DeviceTopics(box.identity.tenant_id, box.identity.device_id).commands
    with contextlib.closing(device_link(MOSQUITTO)) as link:
        link.connect(timeout=5)
        for payload in payloads:
            link.publish(topic, payload, qos=1)


def box_outcomes(box: Box) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(box.identity.db_path)) as conn:
        return conn.execute("SELECT command_id, kind, status FROM command_outcomes "
                            "ORDER BY at").fetchall()


def outbox_types(box: Box) -> list[str]:
    with contextlib.closing(sqlite3.connect(box.identity.db_path)) as conn:
        return [json.loads(b)["data"]["type"] for (b,) in conn.execute(
            "SELECT body FROM outbox ORDER BY seq")]


def order_commands(box: Box, order_id: str) -> str:
    return f"/api/v1/tenants/{box.identity.tenant_id}/orders/{order_id}/commands"


def cloud_commands(cloud: Cloud, box: Box) -> list[dict[str, Any]]:
    ids = box.identity
    got = cloud.api.get(f"/api/v1/tenants/{ids.tenant_id}/devices/{ids.device_id}/commands")
    assert got.status_code == 200
    return list(got.json())


def test_cloud_cancel_reaches_the_box_once_even_when_delivered_twice(
    box: Box, cloud: Cloud, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.sync_downlink")
    order = box.submit()
    with running_sync(box, MOSQUITTO, **FAST):
        wait_until(lambda: cloud.api.get(f"/api/v1/orders/{order.order_id}").status_code == 200,
                   what="order in the cloud")
        posted = cloud.api.post(order_commands(box, order.order_id),
                                json={"kind": "cancel", "reason": "customer called back"})
        assert posted.status_code == 202, posted.text
        command = Command.model_validate(posted.json())
        assert cloud.api.get(f"/api/v1/orders/{order.order_id}").json()["order"]["status"] \
            == "cancelled"  # the cloud's record is authoritative at once
        wait_until(lambda: box.store.orders()[0].status == "cancelled", what="cancel on the box")
        publish_commands(box, command.model_dump_json().encode())  # a second delivery
        wait_until(lambda: any(r.getMessage() == "command seen before; reporting its outcome "
                               "again" for r in caplog.records), what="redelivery noticed")
        wait_until(lambda: [c["outcome"] for c in cloud_commands(cloud, box)] == ["applied"],
                   what="outcome reported to the cloud")
        wait_until(lambda: box.store.outbox_depth() == 0, what="order.cancelled synced")
    assert box_outcomes(box) == [(command.command_id, "cancel", "applied")]
    assert outbox_types(box).count("order.cancelled") == 1
    again = cloud.api.post(order_commands(box, order.order_id), json={"kind": "cancel"})
    assert again.status_code == 409 and again.json()["code"] == "order.already_cancelled"
    stranger = cloud.api.post(f"/api/v1/tenants/{new_id('ten')}/orders/{order.order_id}/commands",
                              json={"kind": "reprint"})
    assert stranger.status_code == 404 and stranger.json()["code"] == "order.not_found"
    anonymous = cloud.api.post(order_commands(box, order.order_id), json={"kind": "reprint"},
                               headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert [c["command"]["kind"] for c in cloud_commands(cloud, box)] == ["cancel"]


def test_malformed_commands_are_dropped_and_later_good_ones_still_apply(
    box: Box, cloud: Cloud, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.sync_downlink")
    order = box.submit()
    ids = box.identity
    now = datetime.now(UTC).isoformat()
    no_order = {"command_id": new_id("cmd"), "tenant_id": ids.tenant_id,
                "device_id": ids.device_id, "issued_at": now, "kind": "cancel"}
    good = Command(command_id=new_id("cmd"), tenant_id=ids.tenant_id, device_id=ids.device_id,
                   issued_at=datetime.now(UTC), kind="reprint", order_id=order.order_id)
    with running_sync(box, MOSQUITTO, **FAST):
        # A first-time box has no broker session before it subscribes: wait for its report
        # (sent after its SUBSCRIBE on the same connection), as the cloud's resend would.
        wait_until(lambda: cloud.db.reported_states(ids.tenant_id, ids.device_id),
                   what="the box connected and reporting")
        publish_commands(box, b"\xff garbage", json.dumps(no_order).encode(),
                         good.model_dump_json().encode(), good.model_dump_json().encode())
        wait_until(lambda: box_outcomes(box) == [(good.command_id, "reprint", "applied")],
                   what="the good command applied")
        wait_until(lambda: any(r.getMessage() == "command seen before; reporting its outcome "
                               "again" for r in caplog.records), what="duplicate noticed")
    dropped = [r for r in caplog.records if r.getMessage() == "dropping malformed command"]
    assert len(dropped) == 2 and all(r.levelno == logging.ERROR for r in dropped)
    assert outbox_types(box).count("ticket.reprint_requested") == 1


def test_resync_command_requeues_the_day_once(box: Box, cloud: Cloud) -> None:
    box.submit()
    box.submit()
    ids = box.identity
    with running_sync(box, MOSQUITTO, **FAST):
        wait_until(lambda: box.store.outbox_depth() == 0, what="drained")
        resync = Command(command_id=new_id("cmd"), tenant_id=ids.tenant_id,
                         device_id=ids.device_id, issued_at=datetime.now(UTC), kind="resync",
                         day=datetime.now(UTC).date())
        publish_commands(box, resync.model_dump_json().encode(), resync.model_dump_json().encode())
        wait_until(lambda: box_outcomes(box) == [(resync.command_id, "resync", "applied")],
                   what="resync applied")
        wait_until(lambda: box.store.outbox_depth() == 0, what="day re-sent and acked")
    with box.store.transaction() as conn:
        outcome = desired_state.outcome(conn, resync.command_id)
    assert outcome is not None and outcome.reason == "2 events queued again"
    assert cloud.event_seqs(ids.device_id) == [1, 2]  # idempotent ingest: no new rows
