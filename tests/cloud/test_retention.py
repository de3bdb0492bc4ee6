"""Cloud data retention on SQLite and PostgreSQL: exactly the old box events, old order
events and old finished actions (with their history) go; open actions, the order events
they replay from, anything inside the 32-day reconciliation floor and the audit log stay.
On PostgreSQL the app role still cannot DELETE itself: only the granted function can."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.control.retention import RetentionSchedule, cutoffs, prune_tenant
from cloud.control.tenants import Retention, TenantCreate, create_tenant
from cloud.db import Database, PermissionDenied, iso, open_database
from cloud.db.schema import RETENTION_FLOOR_DAYS
from cloud.integration.claims import Lane, claim_lane, finish
from cloud.integration.delivery import Outcome
from cloud.integration.order_inbox import record_order_events
from cloud.integration.remediation import put_integration
from cloud.integration.webhooks import WebhookConfig, new_secret
from cloud.integration.worker import Worker
from tests.cloud.conftest import PgServer
from tests.cloud.secret_keys import TEST_SECRETS, secret_env
from tests.cloud.test_integration_pos import POLICY, ctx, make_order, new_tenant, submitted

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def tenant_keeping(db: Database, events_days: int, actions_days: int) -> str:
    tenant = new_tenant()
    create_tenant(db, ctx(), TenantCreate(
        tenant_id=tenant, name="retention test",
        retention=Retention(events_days=events_days, actions_days=actions_days)))
    put_integration(db, tenant, "hooks", WebhookConfig(url="http://127.0.0.1:9/",
                                                       secret=new_secret()),
                    True, ctx(), TEST_SECRETS)
    return tenant


def box_event(db: Database, tenant: str, received: datetime) -> str:
    """An ingested box event, as CloudDb stores it (ISO text times)."""
    event_id = f"evt_{uuid.uuid4().hex[:16]}"
    with db.tenant(tenant) as tx:
        tx.execute("INSERT INTO events (event_id, tenant_id, device_id, seq, type, body, "
                   "received_at) VALUES (:event_id, :tenant_id, 'dev_1', 1, 'call.ended', "
                   "'{}', :at)", {"event_id": event_id, "at": iso(received)})
    return event_id


def order_with_action(db: Database, tenant: str, at: datetime, *, finished: bool) -> str:
    """An order planned at `at` into one webhook action, delivered then (or left open)."""
    order = make_order(tenant)
    [action] = record_order_events(db, [submitted(order)], at)
    if finished:
        [claim] = claim_lane(db, Lane(tenant, "hooks"), at, 1, "w1", POLICY, random.Random(1))
        assert claim.action.action_id == action.action_id
        finish(db, claim, Outcome.delivered({"status": 204}), at, "w1", POLICY,
               random.Random(1))
    return order.order_id


def kept(db: Database, tenant: str) -> dict[str, list[str]]:
    with db.tenant(tenant) as tx:
        def ids(sql: str) -> list[str]:
            return sorted(str(r["id"]) for r in tx.fetch_all(sql))
        return {
            "events": ids("SELECT event_id AS id FROM events WHERE tenant_id = :tenant_id"),
            "order_events": ids("SELECT order_id AS id FROM integration_order_events "
                                "WHERE tenant_id = :tenant_id"),
            "actions": ids("SELECT order_id AS id FROM integration_actions "
                           "WHERE tenant_id = :tenant_id"),
            "action_events": ids(
                "SELECT a.order_id AS id FROM integration_action_events e JOIN "
                "integration_actions a ON a.action_id = e.action_id "
                "WHERE e.tenant_id = :tenant_id AND a.tenant_id = :tenant_id"),
            "orphan_action_events": ids(
                "SELECT event_id AS id FROM integration_action_events e WHERE e.tenant_id = "
                ":tenant_id AND NOT EXISTS (SELECT 1 FROM integration_actions a "
                "WHERE a.action_id = e.action_id)"),
            "audit": ids("SELECT entry_id AS id FROM audit_log WHERE tenant_id = :tenant_id"),
        }


def test_retention_deletes_exactly_the_old_finished_rows(database: Database) -> None:
    tenant = tenant_keeping(database, events_days=40, actions_days=60)
    old_event, new_event = box_event(database, tenant, days_ago(100)), box_event(
        database, tenant, days_ago(35))
    gone = order_with_action(database, tenant, days_ago(100), finished=True)
    recent = order_with_action(database, tenant, days_ago(45), finished=True)
    still_open = order_with_action(database, tenant, days_ago(100), finished=False)
    bystander = tenant_keeping(database, events_days=40, actions_days=60)
    box_event(database, bystander, days_ago(100))
    order_with_action(database, bystander, days_ago(100), finished=True)
    before, bystander_before = kept(database, tenant), kept(database, bystander)
    assert before["audit"]  # create_tenant and put_integration were audited

    counts = prune_tenant(database, tenant, Retention(events_days=40, actions_days=60), NOW,
                          batch=1)  # batch 1: the loop must come back for the rest

    after = kept(database, tenant)
    assert after["events"] == [new_event] and old_event in before["events"]
    # The open action's order event stays (a replay needs it); the 45-day one is past 40.
    assert after["order_events"] == [still_open]
    assert sorted(after["actions"]) == sorted([still_open, recent])
    assert gone not in after["action_events"] and recent in after["action_events"]
    assert after["orphan_action_events"] == []
    assert after["audit"] == before["audit"]  # the audit log is never pruned
    assert (counts.events, counts.order_events, counts.actions) == (1, 2, 1)
    assert counts.action_events == before["action_events"].count(gone) == 3
    assert kept(database, bystander) == bystander_before  # another tenant's rows untouched


def test_nothing_younger_than_the_reconciliation_floor_is_deleted(database: Database) -> None:
    tenant = tenant_keeping(database, events_days=0, actions_days=0)
    inside = box_event(database, tenant, days_ago(RETENTION_FLOOR_DAYS - 2))
    box_event(database, tenant, days_ago(RETENTION_FLOOR_DAYS + 2))
    young = order_with_action(database, tenant, days_ago(RETENTION_FLOOR_DAYS - 2),
                              finished=True)
    order_with_action(database, tenant, days_ago(RETENTION_FLOOR_DAYS + 2), finished=True)
    assert cutoffs(Retention(events_days=0, actions_days=0), NOW) == (
        days_ago(RETENTION_FLOOR_DAYS), days_ago(RETENTION_FLOOR_DAYS))
    counts = prune_tenant(database, tenant, Retention(events_days=0, actions_days=0), NOW)
    after = kept(database, tenant)
    assert after["events"] == [inside]
    assert after["actions"] == [young] and after["order_events"] == [young]
    assert (counts.events, counts.order_events, counts.actions) == (1, 1, 1)


def test_the_box_day_window_fits_inside_the_floor() -> None:
    """The floor must outlast every day a box may still report and ask to resync."""
    from appliance.config import SyncConfig

    report_days = SyncConfig.model_fields["report_days"]
    most = max(m.le for m in report_days.metadata if getattr(m, "le", None) is not None)
    assert RETENTION_FLOOR_DAYS > most


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[Database]:
    db = open_database(pg_server.url, app_role=pg_server.app_role)
    yield db
    db.close()


def test_postgres_app_role_deletes_only_through_the_function(pg_database: Database) -> None:
    database = pg_database  # roles and grants exist only on PostgreSQL
    tenant = tenant_keeping(database, events_days=0, actions_days=0)
    other = tenant_keeping(database, events_days=0, actions_days=0)
    young = box_event(database, tenant, days_ago(RETENTION_FLOOR_DAYS - 2))
    box_event(database, tenant, days_ago(RETENTION_FLOOR_DAYS + 2))
    with pytest.raises(PermissionDenied), database.tenant(tenant) as tx:
        tx.execute("DELETE FROM events WHERE tenant_id = :tenant_id")
    with pytest.raises(PermissionDenied), database.tenant(tenant) as tx:
        tx.execute("DELETE FROM audit_log WHERE tenant_id = :tenant_id")
    with pytest.raises(PermissionDenied), database.tenant(tenant) as tx:  # not its scope
        tx.fetch_one("SELECT * FROM voxeron_retention_prune(:other, now(), now(), 10)",
                     {"other": other})
    with database.tenant(tenant) as tx:  # asked for "everything": the database clamps
        row = tx.fetch_one("SELECT * FROM voxeron_retention_prune(:tenant_id, now(), now(), "
                           "100)")
    assert row is not None and row["deleted_events"] == 1
    assert kept(database, tenant)["events"] == [young]


def test_the_cli_and_the_worker_loop_run_the_pass(database: Database, db_url: str,
                                                  request: pytest.FixtureRequest) -> None:
    tenant = tenant_keeping(database, events_days=40, actions_days=60)
    box_event(database, tenant, days_ago(100))
    role = (request.getfixturevalue("pg_server").app_role if database.backend == "postgresql"
            else "voxeron_app")
    env = {**os.environ, **secret_env(), "VOXERON_CLOUD_DATABASE_URL": db_url,
           "VOXERON_CLOUD_DATABASE_APP_ROLE": role}
    done = subprocess.run([sys.executable, "-m", "voxeron", "cloud", "retention"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["events"] for line in lines if line["tenant_id"] == tenant] == [1]
    assert kept(database, tenant)["events"] == []

    box_event(database, tenant, days_ago(100))
    worker = Worker(database, "w1", POLICY, parallel=1, clock=lambda: NOW,
                    secrets=TEST_SECRETS, retention_every_s=3600)
    try:
        assert worker.maybe_run_retention() >= 1  # the first check runs a pass
        box_event(database, tenant, days_ago(100))
        assert worker.maybe_run_retention() == 0  # not due again within the hour
    finally:
        worker.close()
    assert len(kept(database, tenant)["events"]) == 1


def test_the_schedule_runs_at_start_then_every_interval() -> None:
    schedule = RetentionSchedule(every_s=3600)
    assert schedule.due(NOW) and not schedule.due(NOW + timedelta(minutes=59))
    assert schedule.due(NOW + timedelta(hours=1))
    assert not RetentionSchedule(every_s=0).due(NOW)
