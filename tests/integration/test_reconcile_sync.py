"""Reconciliation end to end: the cloud loses part of a day (as a restored backup would),
the box's day summary shows it, the cloud resyncs the day and ends up whole again; an
order cancelled in the cloud's record is cancelled on the box too."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime

from tests.integration.cloud_harness import wait_until
from tests.integration.sync_box import box_fixture, governed_cloud_fixture  # noqa: F401 (fixtures)
from tests.integration.test_sync_to_cloud import (
    MOSQUITTO,
    Box,
    Cloud,
    running_sync,
)

FAST = {"report_interval_s": 0.3}


def cloud_sql(cloud: Cloud, sql: str, *params: object) -> None:
    with contextlib.closing(sqlite3.connect(cloud.db_path)) as conn, conn:
        conn.execute(sql, params)


def test_a_day_the_cloud_lost_is_healed_by_resync(box: Box, cloud: Cloud) -> None:
    orders = [box.submit() for _ in range(3)]
    [job, *_] = box.store.claim_print_jobs(datetime.now(UTC), limit=1)
    box.store.complete_print(job, "kitchen", datetime.now(UTC))
    lost = orders[1]
    ids = box.identity
    # The cloud holds the day, then loses an order and a ticket (e.g. a restored backup);
    # reconciliation must not act while it is whole.
    with running_sync(box, MOSQUITTO):
        wait_until(lambda: box.store.outbox_depth() == 0, what="day synced")
    assert cloud.api.post(f"/api/v1/tenants/{ids.tenant_id}/reconcile").json() == []
    cloud_sql(cloud, "DELETE FROM events WHERE device_id = ? AND (json_extract(body, "
              "'$.correlation.order_id') = ? OR type = 'ticket.printed')",
              ids.device_id, lost.order_id)
    cloud_sql(cloud, "DELETE FROM orders WHERE order_id = ?", lost.order_id)
    cloud_sql(cloud, "UPDATE orders SET ticket_printed_at = NULL WHERE device_id = ?",
              ids.device_id)
    assert cloud.api.get(f"/api/v1/orders/{lost.order_id}").status_code == 404
    with running_sync(box, MOSQUITTO, **FAST):
        wait_until(lambda: cloud.api.get(f"/api/v1/orders/{lost.order_id}").status_code == 200,
                   what="the lost order back in the cloud")
        wait_until(lambda: cloud.api.get(f"/api/v1/orders/{job.order.order_id}").json()[
            "ticket_printed"], what="the lost ticket.printed back")
        url = f"/api/v1/tenants/{ids.tenant_id}/devices/{ids.device_id}/commands"
        commands = cloud.api.get(url)
        wait_until(lambda: [(c["command"]["kind"], c["outcome"]) for c in cloud.api.get(
            url).json()]
            == [("resync", "applied")], what="one resync, applied")
        assert commands.status_code == 200
    assert sorted(cloud.event_seqs(ids.device_id)) == [1, 2, 3, 4]
    assert cloud.api.post(f"/api/v1/tenants/{ids.tenant_id}/reconcile").json() == []


def test_an_order_cancelled_in_the_cloud_record_is_cancelled_on_the_box(
    box: Box, cloud: Cloud,
) -> None:
    kept, cancelled = box.submit(), box.submit()
    with running_sync(box, MOSQUITTO, **FAST):
        wait_until(lambda: box.store.outbox_depth() == 0, what="day synced")
        # The cloud's record says cancelled (an operator, a POS) with no command sent yet.
        cloud_sql(cloud, "UPDATE orders SET body = json_set(body, '$.status', 'cancelled') "
                  "WHERE order_id = ?", cancelled.order_id)
        wait_until(lambda: {o.order_id: o.status for o in box.store.orders()}
                   == {kept.order_id: "submitted", cancelled.order_id: "cancelled"},
                   what="the cancel on the box")
        ids = box.identity
        wait_until(lambda: [(c["command"]["kind"], c["command"]["order_id"], c["outcome"])
                            for c in cloud.api.get(f"/api/v1/tenants/{ids.tenant_id}/"
                                                   f"devices/{ids.device_id}/commands").json()]
                   == [("cancel", cancelled.order_id, "applied")], what="cancel reported")
        wait_until(lambda: box.store.outbox_depth() == 0, what="order.cancelled synced")
    assert cloud.api.post(f"/api/v1/tenants/{box.identity.tenant_id}/reconcile").json() == []
