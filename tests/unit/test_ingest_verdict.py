"""What cloud ingest does with each kind of payload on an events topic (pure, no broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from cloud.control.ingest import Accept, Drop, Reject, judge_event
from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, TicketPrinted

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
EVENT = EventEnvelope(
    event_id="evt_1", tenant_id="ten_a", device_id="dev_a", seq=7, occurred_at=NOW,
    correlation=Correlation(),
    data=TicketPrinted(order_id="ord_1", action_id="act_1", printer="kitchen", printed_at=NOW),
)
GOOD = EVENT.model_dump_json().encode()


def test_valid_event_from_its_own_topic_is_accepted() -> None:
    assert judge_event("ten_a", "dev_a", GOOD) == Accept(EVENT)


def test_unparseable_payloads_are_dropped_without_an_ack() -> None:
    for payload in (GOOD[:40], b"", b"\xff\xfe", b"null", b'"text"', b"[1]"):
        assert isinstance(judge_event("ten_a", "dev_a", payload), Drop), payload


def test_schema_violation_with_an_id_is_rejected_so_the_box_moves_on() -> None:
    body = json.loads(GOOD)
    body["data"]["type"] = "order.teleported"
    verdict = judge_event("ten_a", "dev_a", json.dumps(body).encode())
    assert isinstance(verdict, Reject)
    assert (verdict.ack.event_id, verdict.ack.seq, verdict.ack.status) == ("evt_1", 7, "rejected")
    assert verdict.ack.error and verdict.ack.error.code == "event.invalid"
    assert "data" in verdict.ack.error.message


def test_schema_violation_without_an_id_is_dropped() -> None:
    body = json.loads(GOOD)
    del body["event_id"]
    assert isinstance(judge_event("ten_a", "dev_a", json.dumps(body).encode()), Drop)


def test_event_claiming_another_tenant_or_device_is_rejected() -> None:
    for tenant, device in (("ten_b", "dev_a"), ("ten_a", "dev_b")):
        verdict = judge_event(tenant, device, GOOD)
        assert isinstance(verdict, Reject)
        assert verdict.ack.error and verdict.ack.error.category == "validation"
        assert verdict.ack.error.code == "event.topic_mismatch"
        assert verdict.ack.error.correlation.tenant_id == tenant
