"""Corrupt, truncated, oversized and misaddressed messages on every topic, with orders flowing.

A raw paho client (no Voxeron code on the sending side) publishes each bad payload on
the device's own topics between real orders. Each must be refused with an error-level
structured log line by the process that reads that topic (the cloud for up/events,
up/health, up/reported and status; voxeron-sync for down/acks, down/commands and
down/desired), and none may poison a queue: every order before, between and after the
garbage is printed once and reaches the cloud once, in order.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from sync.contracts.messages import Command, DesiredState, DeviceStatus, Health, ReportedState
from sync.ids import new_id
from tests.faults.stack import FaultStack, raw_client, wait_until
from tests.faults.verdict import assert_exactly_once

pytestmark = pytest.mark.slow
BIG = 1024 * 1024  # 1 MiB: far above any real message, well inside Mosquitto's limit


@dataclass(frozen=True)
class Garbage:
    """One bad message: where it goes, what it is, and the error line it must cause."""

    name: str
    topic: str  # attribute of DeviceTopics
    payload: bytes
    role: str  # the process that must refuse it
    logged: str  # the `msg` of the error line it must cause


def _cases(stack: FaultStack) -> list[Garbage]:
    ids = {"tenant_id": stack.tenant_id, "device_id": new_id("dev")}  # another device
    now = datetime.now(UTC)
    event = stack.loader.store.pending_events(limit=1)
    real = event[0].model_dump_json().encode() if event else b'{"event_id": "evt_'
    foreign_event = (event[0].model_copy(update={"device_id": ids["device_id"],
                                                 "event_id": new_id("evt")})
                     .model_dump_json().encode()) if event else b"{}"
    not_json, cut = b"\xff\xfe not json at all", real[: len(real) // 2]
    big_blob = json.dumps({"pad": "x" * BIG}).encode()
    health = Health(**ids, at=now, outbox_depth=0, firmware="x").model_dump_json().encode()
    status = DeviceStatus(**ids, online=True).model_dump_json().encode()
    reported = ReportedState(**ids, at=now, applied_version=0,
                             status="applied").model_dump_json().encode()
    command = Command(**ids, command_id=new_id("cmd"), issued_at=now, kind="reprint",
                      order_id=new_id("ord")).model_dump_json().encode()
    desired = DesiredState(**ids, version=1, issued_at=now).model_dump_json().encode()
    invalid_event = json.dumps({"event_id": new_id("evt"), "seq": 1, "data": {"x": 1}}).encode()
    cloud_event, rejected = ("cloud", "dropping event payload"), ("cloud", "rejecting event")
    g = Garbage
    return [
        g("event not json", "events", not_json, *cloud_event),
        g("event truncated", "events", cut, *cloud_event),
        g("event a JSON array", "events", b"[1, 2, 3]", *cloud_event),
        g("event oversized", "events", big_blob, *cloud_event),
        g("event wrong schema", "events", invalid_event, *rejected),
        g("event of another device", "events", foreign_event, *rejected),
        g("health not json", "health", not_json, "cloud", "dropping malformed Health"),
        g("health truncated", "health", health[:20], "cloud", "dropping malformed Health"),
        g("health oversized", "health", big_blob, "cloud", "dropping malformed Health"),
        g("health of another device", "health", health, "cloud",
          "dropping Health for another device than its topic"),
        g("status not json", "status", not_json, "cloud", "dropping malformed DeviceStatus"),
        g("status truncated", "status", status[:25], "cloud", "dropping malformed DeviceStatus"),
        g("status of another device", "status", status, "cloud",
          "dropping DeviceStatus for another device than its topic"),
        g("reported wrong schema", "reported", b'{"applied_version": -1}', "cloud",
          "dropping malformed ReportedState"),
        g("reported of another device", "reported", reported, "cloud",
          "dropping ReportedState for another device than its topic"),
        g("ack not json", "acks", not_json, "sync", "dropping malformed ack"),
        g("ack truncated", "acks", b'{"event_id": "evt_', "sync", "dropping malformed ack"),
        g("ack wrong schema", "acks", b'{"event_id": 7, "status": "maybe"}', "sync",
          "dropping malformed ack"),
        g("ack oversized", "acks", big_blob, "sync", "dropping malformed ack"),
        g("command not json", "commands", not_json, "sync", "dropping malformed command"),
        g("command truncated", "commands", command[:30], "sync", "dropping malformed command"),
        g("command of another device", "commands", command, "sync",
          "dropping command for another device"),
        g("desired not json", "desired", not_json, "sync", "dropping malformed desired state"),
        g("desired oversized", "desired", big_blob, "sync", "dropping malformed desired state"),
        g("desired of another device", "desired", desired, "sync",
          "dropping desired state for another device"),
    ]


def _errors(stack: FaultStack, role: str) -> Counter[str]:
    proc = {"cloud": stack.cloud, "sync": stack.sync}[role]
    return Counter(r["msg"] for r in proc.log_records()
                   if r.get("level") == "error" and r.get("device_id") == stack.device_id)


def test_garbage_on_every_topic_is_refused_and_poisons_nothing(
    stack: FaultStack, seed: int,
) -> None:
    for _ in range(5):
        stack.loader.submit()
    cases = _cases(stack)
    before = {role: _errors(stack, role) for role in ("cloud", "sync")}
    client = raw_client(stack.broker.port)
    try:
        for case in cases:
            topic = getattr(stack.topics, case.topic)
            client.publish(topic, case.payload, qos=1).wait_for_publish(10)
            stack.loader.submit()  # a real order right behind each bad message
    finally:
        client.loop_stop()
        client.disconnect()
    for _ in range(5):
        stack.loader.submit()

    # Rejected events come back as 'rejected' acks: the box logs each and moves on.
    expected = {"cloud": Counter(c.logged for c in cases if c.role == "cloud"),
                "sync": Counter(c.logged for c in cases if c.role == "sync")}
    expected["sync"]["cloud rejected event; marking it done"] += sum(
        c.logged == "rejecting event" for c in cases)

    def refused() -> bool:
        return all(_errors(stack, role) - before[role] >= want
                   for role, want in expected.items())
    wait_until(refused, 60, "an error line for every bad message",
               lambda: f"cloud {_errors(stack, 'cloud')}, sync {_errors(stack, 'sync')}")
    for role, want in expected.items():
        got = _errors(stack, role) - before[role]
        assert {m: got[m] for m in want} == dict(want), f"{role} logged {got}"
    verdict = assert_exactly_once(stack, stack.loader.submitted, context=f"seed={seed}")
    assert all(p.alive for p in stack.processes), "a process died of a bad message"
    print(f"{len(cases)} bad messages refused; {verdict}")
