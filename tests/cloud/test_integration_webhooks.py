"""Outbound webhooks signed per Standard Webhooks, received by a real HTTP server that
verifies them the way the spec tells receivers to (written here independently of the
sender), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud.db import Database
from cloud.integration.action_store import get_action
from cloud.integration.order_inbox import record_order_events
from cloud.integration.remediation import put_integration
from cloud.integration.webhooks import WebhookConfig, new_secret, sign
from cloud.integration.worker import Worker
from tests.cloud.secret_keys import TEST_SECRETS
from tests.cloud.test_integration_pos import (
    POLICY,
    Clock,
    close_open_actions,
    ctx,
    make_order,
    new_tenant,
    submitted,
)

TOLERANCE_S = 300


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> str:
    """The spec's receiver check; returns why a delivery is refused ('' if accepted)."""
    msg_id, ts, sigs = (headers.get(h) for h in ("webhook-id", "webhook-timestamp",
                                                 "webhook-signature"))
    if not (msg_id and ts and sigs):
        return "missing headers"
    if not ts.isdigit() or abs(now - int(ts)) > TOLERANCE_S:
        return "timestamp outside tolerance"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + body,
                 hashlib.sha256).digest()).decode()
    for entry in sigs.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return ""
    return "no matching signature"


def test_the_spec_test_vector() -> None:
    vector = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
              1614265330, b'{"test": 2432232314}')
    assert sign(*vector) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"webhook-id": vector[1], "webhook-timestamp": str(vector[2]),
               "webhook-signature": "v1,bm9wZQ== " + sign(*vector)}
    assert verify(vector[0], headers, vector[3], vector[2] + 10) == ""
    assert verify(vector[0], headers, vector[3] + b" ", vector[2]) == "no matching signature"
    assert verify(new_secret(), headers, vector[3], vector[2]) == "no matching signature"
    assert verify(vector[0], headers, vector[3], vector[2] + 301) == "timestamp outside tolerance"


def test_a_bad_secret_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        WebhookConfig(url="http://127.0.0.1:1/", secret="not-a-secret")
    with pytest.raises(ValueError, match="unknown event types"):
        WebhookConfig(url="http://127.0.0.1:1/", secret=new_secret(), events=["order.eaten"])


class Receiver:
    """A webhook endpoint: verifies each delivery, answers 500 `fail_first` times."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.deliveries: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                refused = verify(receiver.secret, headers, body, time.time())
                receiver.deliveries.append({"id": headers.get("webhook-id"),
                                            "refused": refused, "body": json.loads(body)})
                status = 401 if refused else 204
                if not refused and receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/voxeron"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(new_secret(), fail_first=1)
    yield r
    r.close()


def test_order_created_webhook_is_signed_and_retried_with_the_same_id(
        database: Database, receiver: Receiver) -> None:
    close_open_actions(database)
    clock = Clock(datetime.now(UTC))  # the receiver checks the timestamp against its clock
    worker = Worker(database, "w1", POLICY, parallel=2, clock=clock, rng=random.Random(4),
                    secrets=TEST_SECRETS)
    tenant = new_tenant()
    put_integration(database, tenant, "hooks", WebhookConfig(
        url=receiver.url, secret=receiver.secret, events=["order.created"]), True, ctx(),
        TEST_SECRETS)
    order = make_order(tenant)
    try:
        [action] = record_order_events(database, [submitted(order)], clock.now)
        worker.run_until_idle()  # the endpoint answers 500 first
        clock.advance(5)
        worker.run_until_idle()
    finally:
        worker.close()
        close_open_actions(database)
    with database.tenant(tenant) as tx:
        done = get_action(tx, action.action_id)
    assert done.state == "succeeded" and done.attempts == 2
    assert [d["refused"] for d in receiver.deliveries] == ["", ""]
    assert {d["id"] for d in receiver.deliveries} == {action.action_id}  # receivers dedupe
    body = receiver.deliveries[-1]["body"]
    assert body["type"] == "order.created"
    assert body["data"]["order"]["order_id"] == order.order_id


def test_a_receiver_with_another_secret_refuses_and_the_action_dead_letters(
        database: Database) -> None:
    close_open_actions(database)
    r = Receiver(new_secret())
    clock = Clock(datetime.now(UTC))
    worker = Worker(database, "w1", POLICY, parallel=2, clock=clock, rng=random.Random(4),
                    secrets=TEST_SECRETS)
    tenant = new_tenant()
    put_integration(database, tenant, "hooks", WebhookConfig(url=r.url, secret=new_secret()),
                    True, ctx(), TEST_SECRETS)
    try:
        [action] = record_order_events(database, [submitted(make_order(tenant))], clock.now)
        worker.run_until_idle()
    finally:
        worker.close()
        r.close()
    with database.tenant(tenant) as tx:
        dead = get_action(tx, action.action_id)
    assert r.deliveries[0]["refused"] == "no matching signature"
    assert dead.state == "dead_lettered" and dead.last_error is not None
    assert dead.last_error.code == "webhook.unauthorized"
