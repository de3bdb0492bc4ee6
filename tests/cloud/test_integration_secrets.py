"""Integration secrets sealed at rest, on SQLite and PostgreSQL: the stored config never
holds the POS token or the webhook secret, a worker with the key still authenticates to
the fake Square (a real HTTP server) and signs webhooks a real receiver verifies, keys
rotate (the old key can be dropped afterwards), clear legacy rows keep working until
`rotate` seals them, and a wrong key fails clearly without losing the action.
"""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cloud.config import CloudConfig
from cloud.db import Database, json_value
from cloud.integration.action_store import get_action, list_actions
from cloud.integration.order_inbox import record_order_events
from cloud.integration.pos_square import SquareConfig
from cloud.integration.remediation import list_integrations, put_integration
from cloud.integration.secret_box import (
    SecretBox,
    SecretKeyError,
    SecretUndecryptable,
    new_key,
)
from cloud.integration.secret_rotation import rotate_secrets
from cloud.integration.webhooks import WebhookConfig, new_secret
from cloud.integration.worker import Worker
from sync.contracts.actions import Action
from tests.cloud.test_integration_pos import (
    POLICY,
    Clock,
    close_open_actions,
    ctx,
    make_order,
    new_tenant,
    submitted,
)
from tests.cloud.test_integration_webhooks import Receiver
from tests.peers.fake_square import ACCESS_TOKEN, LOCATION_ID, FakeSquare

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = new_key(), new_key()


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The backend's database with no open action left by another test (PostgreSQL is
    shared by the session, and a worker claims every tenant's due work)."""
    close_open_actions(database)
    yield database
    close_open_actions(database)


@pytest.fixture
def square() -> Iterator[FakeSquare]:
    with FakeSquare() as fake:
        yield fake


def raw_config(db: Database, tenant_id: str, integration_id: str) -> dict[str, Any]:
    with db.tenant(tenant_id) as tx:
        row = tx.fetch_one("SELECT config FROM integration_configs WHERE tenant_id = "
                           ":tenant_id AND integration_id = :i", {"i": integration_id})
    assert row is not None
    value: dict[str, Any] = json_value(row["config"])
    return value


def put_square(db: Database, tenant_id: str, url: str, secrets: SecretBox) -> None:
    put_integration(db, tenant_id, "square", SquareConfig(
        base_url=url, access_token=ACCESS_TOKEN, location_id=LOCATION_ID,
        timeout_s=2.0), True, ctx(), secrets)


def deliver_one(db: Database, tenant_id: str, secrets: SecretBox, clock: Clock,
                n: int = 1) -> list[Action]:
    """Record one new order of the tenant and let a worker holding `secrets` run."""
    actions = record_order_events(db, [submitted(make_order(tenant_id, n), n)], clock.now)
    worker = Worker(db, "w-secrets", POLICY, parallel=2, clock=clock, rng=random.Random(7),
                    secrets=secrets)
    try:
        worker.run_until_idle()
    finally:
        worker.close()
    with db.tenant(tenant_id) as tx:
        return [get_action(tx, a.action_id) for a in actions]


def test_stored_config_never_holds_the_secret_and_the_worker_still_delivers(
        db: Database, square: FakeSquare) -> None:
    box = SecretBox([NEW])
    tenant = new_tenant()
    receiver = Receiver(new_secret())
    try:
        put_square(db, tenant, square.url, box)
        put_integration(db, tenant, "hooks", WebhookConfig(
            url=receiver.url, secret=receiver.secret, events=["order.created"]),
            True, ctx(), box)
        for integration_id, secret in (("square", ACCESS_TOKEN), ("hooks", receiver.secret)):
            stored = json.dumps(raw_config(db, tenant, integration_id))
            assert secret not in stored and "fernet:v1:" in stored
        views = list_integrations(db, tenant)  # the views need no key and show no secret
        assert [v.integration_id for v in views] == ["hooks", "square"]
        assert ACCESS_TOKEN not in repr(views) and receiver.secret not in repr(views)
        done = deliver_one(db, tenant, box, Clock(datetime.now(UTC)))
    finally:
        receiver.close()
    assert sorted((a.kind, a.state) for a in done) == [("pos_write", "succeeded"),
                                                       ("webhook", "succeeded")]
    assert [d["refused"] for d in receiver.deliveries] == [""]  # signature verified
    pos = next(a for a in done if a.kind == "pos_write")
    assert square.state.distinct_orders(pos.order_id) == 1  # authenticated with the token


def test_rotation_moves_every_secret_to_the_new_key_so_the_old_one_can_go(
        db: Database, square: FakeSquare) -> None:
    tenant = new_tenant()
    put_square(db, tenant, square.url, SecretBox([OLD]))
    before = raw_config(db, tenant, "square")["access_token"]
    report = rotate_secrets(db, SecretBox([NEW, OLD]), tenant_id=tenant)
    assert (report.resealed, report.sealed_legacy, report.current) == (1, 0, 0)
    assert report.ok
    after = raw_config(db, tenant, "square")["access_token"]
    assert after != before and ACCESS_TOKEN not in after
    assert SecretBox([NEW]).is_current(after)
    with pytest.raises(SecretUndecryptable):
        SecretBox([OLD]).unseal(after)
    [done] = deliver_one(db, tenant, SecretBox([NEW]), Clock())  # old key dropped
    assert done.state == "succeeded"
    again = rotate_secrets(db, SecretBox([NEW]), tenant_id=tenant)
    assert (again.resealed, again.current) == (0, 1)  # idempotent


def test_a_clear_legacy_row_is_read_as_is_then_sealed_by_rotate(
        db: Database, square: FakeSquare) -> None:
    tenant = new_tenant()
    put_square(db, tenant, square.url, SecretBox([NEW]))
    legacy = {**raw_config(db, tenant, "square"), "access_token": ACCESS_TOKEN}
    with db.tenant(tenant) as tx:  # what the store wrote before secrets were sealed
        tx.execute("UPDATE integration_configs SET config = :c WHERE tenant_id = :tenant_id "
                   "AND integration_id = 'square'", {"c": legacy})
    assert raw_config(db, tenant, "square")["access_token"] == ACCESS_TOKEN
    clock = Clock()
    [first] = deliver_one(db, tenant, SecretBox([NEW]), clock, 1)
    assert first.state == "succeeded"
    report = rotate_secrets(db, SecretBox([NEW]), tenant_id=tenant)
    assert (report.resealed, report.sealed_legacy, report.current) == (0, 1, 0)
    assert ACCESS_TOKEN not in json.dumps(raw_config(db, tenant, "square"))
    [second] = deliver_one(db, tenant, SecretBox([NEW]), clock, 2)
    assert second.state == "succeeded"


def test_a_wrong_key_fails_clearly_and_loses_nothing(
        db: Database, square: FakeSquare, caplog: pytest.LogCaptureFixture) -> None:
    tenant = new_tenant()
    put_square(db, tenant, square.url, SecretBox([OLD]))
    stored = raw_config(db, tenant, "square")
    clock = Clock()
    with caplog.at_level(logging.ERROR, logger="cloud.integration"):
        [waiting] = deliver_one(db, tenant, SecretBox([NEW]), clock)
    assert waiting.state == "retry_scheduled" and waiting.last_error is not None
    assert waiting.last_error.code == "integration.secret_undecryptable"
    assert waiting.last_error.retryable and "restore the key" in waiting.last_error.message
    alerts = [getattr(r, "fields", {}) for r in caplog.records
              if getattr(r, "fields", {}).get("alert") == "secret_undecryptable"]
    assert alerts and alerts[0]["tenant_id"] == tenant
    assert alerts[0]["integration_id"] == "square"
    assert square.state.distinct_orders(waiting.order_id) == 0  # nothing sent without it
    report = rotate_secrets(db, SecretBox([NEW]), tenant_id=tenant)
    assert report.undecryptable == [(tenant, "square")] and not report.ok
    assert raw_config(db, tenant, "square") == stored  # left exactly as it was
    clock.advance(POLICY.retry.cap_s + 1)  # the key is back: the same action goes out
    worker = Worker(db, "w-secrets", POLICY, parallel=2, clock=clock, rng=random.Random(7),
                    secrets=SecretBox([NEW, OLD]))
    try:
        worker.run_until_idle()
    finally:
        worker.close()
    with db.tenant(tenant) as tx:
        [done] = list_actions(tx, order_id=waiting.order_id)
    assert done.action_id == waiting.action_id and done.state == "succeeded"
    assert square.state.distinct_orders(waiting.order_id) == 1


def test_malformed_keys_stop_the_configuration_naming_the_variable() -> None:
    bogus = "definitely-not-a-fernet-key"
    with pytest.raises(ValidationError) as err:
        CloudConfig(secret_keys=f"{NEW},{bogus}")  # type: ignore[arg-type]
    assert "VOXERON_CLOUD_SECRET_KEYS: key 2 of 2" in str(err.value)
    assert bogus not in str(err.value)  # the value (a secret) is never echoed
    with pytest.raises(SecretKeyError, match="no key"):
        SecretBox([])


def test_the_key_file_is_created_once_private_and_shared(tmp_path: Path) -> None:
    cfg = CloudConfig(db_path=tmp_path / "data" / "cloud.sqlite3")
    first = SecretBox.from_config(cfg)
    path = tmp_path / "data" / "secret-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = SecretBox.from_config(cfg)  # another process on this node: the same key
    assert second.key_ids == first.key_ids and second.unseal(first.seal("x")) == "x"
    path.write_text(f"# newest first\n{NEW}\n{path.read_text()}")
    rotated = SecretBox.from_config(cfg)
    assert rotated.key_ids[1:] == first.key_ids and rotated.unseal(first.seal("y")) == "y"
    path.write_text("not-a-key\n")
    with pytest.raises(SecretKeyError, match=str(path)):
        SecretBox.from_config(cfg)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voxeron", "cloud", "secrets", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_cli_rotate_and_new_key(db: Database, db_url: str, tmp_path: Path,
                                request: pytest.FixtureRequest) -> None:
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    env = {**os.environ, "VOXERON_CLOUD_DATABASE_URL": db_url,
           "VOXERON_CLOUD_DATABASE_APP_ROLE": role,
           "VOXERON_CLOUD_DB_PATH": str(tmp_path / "cloud.sqlite3")}
    made = _cli(env, "new-key")
    assert made.returncode == 0 and SecretBox([made.stdout.strip()]).key_ids
    tenant = new_tenant()
    put_square(db, tenant, "http://127.0.0.1:9", SecretBox([OLD]))
    rotated = _cli({**env, "VOXERON_CLOUD_SECRET_KEYS": f"{NEW},{OLD}"}, "rotate",
                   "--tenant", tenant)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 resealed" in rotated.stdout and "0 undecryptable" in rotated.stdout
    assert SecretBox([NEW]).is_current(raw_config(db, tenant, "square")["access_token"])
    lost = _cli({**env, "VOXERON_CLOUD_SECRET_KEYS": OLD}, "rotate", "--tenant", tenant)
    assert lost.returncode == 1 and f"tenant {tenant} integration square" in lost.stderr
    bad = _cli({**env, "VOXERON_CLOUD_SECRET_KEYS": "nope"}, "rotate")
    assert bad.returncode != 0 and "VOXERON_CLOUD_SECRET_KEYS" in bad.stderr
    assert "nope" not in bad.stderr.replace("VOXERON", "")
