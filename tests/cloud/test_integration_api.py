"""The integration plane's HTTP routes on both backends: configure Square, see an action's
history, remediate it (retry now, skip, resolve, replay), and tenant isolation."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud.control.api_errors import install_error_handlers
from cloud.control.control_state import ControlPlane
from cloud.control.tenant_ca import TenantCaStore
from cloud.control.tenants import TenantCreate, create_tenant
from cloud.control.tokens import TokenCreate, issue_token
from cloud.db import Database
from cloud.integration.order_inbox import record_order_events
from cloud.integration.routes import router
from cloud.integration.webhooks import new_secret
from cloud.integration.worker import Worker
from sync.contracts.errors import ErrorEnvelope
from tests.cloud.secret_keys import TEST_SECRETS
from tests.cloud.test_integration_pos import (
    POLICY,
    Clock,
    close_open_actions,
    ctx,
    fault,
    make_order,
    new_tenant,
    submitted,
)
from tests.peers.fake_square import ACCESS_TOKEN, LOCATION_ID, FakeSquare

OPS = "ops-bootstrap-" + "y" * 40


@dataclass
class Api:
    client: TestClient
    db: Database

    def call(self, method: str, path: str, token: str = OPS, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.request(method, f"/api/v1/tenants{path}",
                                   headers={"Authorization": f"Bearer {token}"}, **kw)  # type: ignore[arg-type]


@pytest.fixture
def api(database: Database, tmp_path: Path) -> Iterator[Api]:
    close_open_actions(database)
    app = FastAPI()
    install_error_handlers(app)
    app.state.control = ControlPlane(db=database, cas=TenantCaStore(tmp_path / "ca"),
                                     bootstrap_ops_token=OPS, secrets=TEST_SECRETS)
    app.include_router(router)
    with TestClient(app) as client:
        yield Api(client, database)
    close_open_actions(database)


def _tenant(db: Database) -> str:
    tenant_id = new_tenant()
    create_tenant(db, ctx(), TenantCreate(tenant_id=tenant_id, name="Pizza Roma"))
    return tenant_id


def test_configure_deliver_and_remediate_over_http(api: Api) -> None:
    tenant = _tenant(api.db)
    clock = Clock(datetime.now(UTC))  # the API stamps remediation with the real time
    with FakeSquare() as square:
        put = api.call("PUT", f"/{tenant}/integrations/square", json={"config": {
            "kind": "square", "base_url": square.url, "access_token": ACCESS_TOKEN,
            "location_id": LOCATION_ID}})
        assert put.status_code == 200, put.text
        assert put.json()["kind"] == "square" and ACCESS_TOKEN not in put.text
        order = make_order(tenant)
        fault(square, kind="error500", count=3)
        [action] = record_order_events(api.db, [submitted(order)], clock.now, POLICY.retry)
        worker = Worker(api.db, "w1", POLICY, parallel=2, clock=clock, rng=random.Random(1),
                        secrets=TEST_SECRETS)
        try:
            for _ in range(6):
                worker.run_until_idle()
                clock.advance(5)
            dead = api.call("GET", f"/{tenant}/integration-actions",
                            params={"state": "dead_lettered"}).json()
            assert [a["action_id"] for a in dead] == [action.action_id]
            detail = api.call("GET", f"/{tenant}/integration-actions/{action.action_id}").json()
            assert [e["transition"] for e in detail["events"]][-2:] == ["claim", "fail"]
            assert detail["action"]["last_error"]["code"] == "pos.unavailable"
            retried = api.call("POST", f"/{tenant}/integration-actions/{action.action_id}"
                                       "/retry-now", json={"reason": "POS back"})
            assert retried.status_code == 200 and retried.json()["state"] == "pending"
            clock.advance(POLICY.breaker.cooldown_s)
            worker.run_until_idle()
        finally:
            worker.close()
        done = api.call("GET", f"/{tenant}/integration-actions/{action.action_id}").json()
        assert done["action"]["state"] == "succeeded"
        assert square.state.distinct_orders(order.order_id) == 1
    again = api.call("POST", f"/{tenant}/integration-actions/{action.action_id}/skip")
    assert again.status_code == 409
    assert ErrorEnvelope.model_validate(again.json()).code == "action.illegal_transition"
    replayed = api.call("POST", f"/{tenant}/orders/{order.order_id}/replay-actions")
    assert replayed.status_code == 200 and replayed.json() == []  # nothing to redo
    breakers = api.call("GET", f"/{tenant}/integration-breakers").json()
    assert [(b["integration_id"], b["mode"]) for b in breakers] == [("square", "closed")]


def test_skip_and_resolve_and_unknown_ids(api: Api) -> None:
    tenant = _tenant(api.db)
    api.call("PUT", f"/{tenant}/integrations/square", json={"config": {
        "kind": "square", "base_url": "http://127.0.0.1:9", "access_token": "x",
        "location_id": LOCATION_ID}}).raise_for_status()
    first, second = make_order(tenant, 1), make_order(tenant, 2)
    a1, a2 = record_order_events(api.db, [submitted(first), submitted(second, 2)],
                                 Clock().now)
    skipped = api.call("POST", f"/{tenant}/integration-actions/{a1.action_id}/skip")
    resolved = api.call("POST", f"/{tenant}/integration-actions/{a2.action_id}/resolve",
                        json={"reason": "keyed in by hand"})
    assert skipped.json()["state"] == "cancelled" and resolved.json()["state"] == "succeeded"
    assert api.call("POST", f"/{tenant}/integration-actions/act_nope/skip").json()["code"] == \
        "action.not_found"
    assert api.call("POST", f"/{tenant}/orders/ord_nope/replay-actions").json()["code"] == \
        "order.not_found"
    bad = api.call("PUT", f"/{tenant}/integrations/hooks", json={"config": {
        "kind": "webhook", "url": "http://127.0.0.1:9/", "secret": "plain"}})
    assert bad.status_code == 422
    switched = api.call("PUT", f"/{tenant}/integrations/square", json={"config": {
        "kind": "webhook", "url": "http://127.0.0.1:9/", "secret": new_secret()}})
    assert switched.status_code == 409 and switched.json()["code"] == "integration.kind_change"


def test_another_tenants_token_sees_nothing(api: Api) -> None:
    mine, theirs = _tenant(api.db), _tenant(api.db)
    with api.db.tenant(theirs) as tx:
        token = issue_token(tx, ctx(datetime.now(UTC)), TokenCreate(name="t", scopes=["tenant:read",
                                                                     "tenant:write"])).secret
    api.call("PUT", f"/{mine}/integrations/square", json={"config": {
        "kind": "square", "base_url": "http://127.0.0.1:9", "access_token": "x",
        "location_id": LOCATION_ID}}).raise_for_status()
    [action] = record_order_events(api.db, [submitted(make_order(mine))], Clock().now)
    for method, path in (("GET", f"/{mine}/integration-actions"),
                         ("POST", f"/{mine}/integration-actions/{action.action_id}/skip"),
                         ("GET", f"/{mine}/integrations")):
        answer = api.call(method, path, token=token)
        assert answer.status_code == 404 and answer.json()["code"] == "tenant.not_found"
    own = api.call("GET", f"/{theirs}/integration-actions", token=token)
    assert own.status_code == 200 and own.json() == []
