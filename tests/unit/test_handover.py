"""Warm handover summary, the REFER progress state machine and the callback scheduler."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from appliance.store.local_store import Turn
from appliance.voice.callbacks import CallbackScheduler
from appliance.voice.handover import MAX_HEARD, build_summary
from appliance.voice.sip_refer import ReferProgress, TransferOutcome, parse_sipfrag, staff_uri

NOW = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)


def turn(speaker: str, text: str) -> Turn:
    return Turn(call_id="call_1", at=NOW, speaker=speaker, text=text, latency_ms=None)


def test_summary_keeps_what_was_heard_the_cart_and_the_reason() -> None:
    turns = [turn("agent", "Thanks for calling."), turn("caller", "a large pepperoni pizza"),
             turn("agent", "Anything else?"), turn("caller", " "), turn("caller", "a real person please")]
    notes = {"intent": "place_order", "lines": "one large pepperoni pizza", "phone": ""}
    s = build_summary(call_id="call_1", caller="5551234", reason="caller asked for a person",
                      turns=turns, notes=notes, at=NOW)
    assert s.heard == ["a large pepperoni pizza", "a real person please"]
    assert s.cart == "lines: one large pepperoni pizza" and s.intent == "place_order"
    assert s.fields() == {"reason": "caller asked for a person", "intent": "place_order",
                          "heard": "a large pepperoni pizza | a real person please",
                          "cart": "lines: one large pepperoni pizza", "caller": "5551234"}
    assert s.lines()[:3] == ["CALL BACK / TRANSFER: 5551234", "Why: caller asked for a person",
                             "Wanted: place order"]
    assert s.lines()[-1] == 'Heard: "a real person please"'


def test_summary_of_a_long_call_keeps_the_last_lines_only() -> None:
    turns = [turn("caller", f"line {i}") for i in range(20)]
    s = build_summary(call_id="c", caller="", reason="turn limit reached", turns=turns, notes={}, at=NOW)
    assert s.heard == [f"line {i}" for i in range(20 - MAX_HEARD, 20)] and s.cart == ""
    assert s.lines()[0] == "CALL BACK / TRANSFER: unknown number"


def test_refer_progress() -> None:
    ok = ReferProgress()
    assert ok.on_response(100) is None and ok.on_response(202) is None and ok.accepted
    assert ok.on_notify(100, terminated=False) is None
    result = ok.on_notify(200, terminated=True)
    assert result is not None and result.transferred and result.status == 200
    refused = ReferProgress().on_response(603)
    assert refused is not None and refused.outcome is TransferOutcome.REFUSED
    for status, outcome in ((486, TransferOutcome.BUSY), (480, TransferOutcome.NO_ANSWER),
                            (408, TransferOutcome.NO_ANSWER), (503, TransferOutcome.FAILED)):
        got = ReferProgress().on_notify(status, terminated=True)
        assert got is not None and got.outcome is outcome
    silent = ReferProgress()
    silent.on_response(202)
    assert silent.expire().outcome is TransferOutcome.TIMED_OUT
    cut = ReferProgress().on_notify(None, terminated=True)
    assert cut is not None and cut.outcome is TransferOutcome.FAILED


def test_sipfrag_and_staff_uri() -> None:
    assert parse_sipfrag(b"SIP/2.0 200 OK\r\n") == 200
    assert parse_sipfrag(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n") == 486
    assert parse_sipfrag(b"hello") is None and parse_sipfrag(b"") is None
    assert str(staff_uri("sip:staff@192.168.1.20:5062")) == "sip:staff@192.168.1.20:5062"
    for bad in ("sip:staff@kitchen.lan", "sips:staff@10.0.0.1", "sip:10.0.0.1", "sip:a@10.0.0.1?x=y"):
        with pytest.raises(ValueError):
            staff_uri(bad)


def test_callback_job_marks_it_due() -> None:
    fired: list[str] = []

    async def main() -> CallbackScheduler:
        sched = CallbackScheduler(on_due=fired.append)
        sched.start()
        sched.schedule("act_late", datetime.now(UTC) - timedelta(seconds=1))  # missed: fires now
        sched.schedule("act_later", datetime.now(UTC) + timedelta(hours=1))
        for _ in range(100):
            if sched.due:
                break
            await asyncio.sleep(0.02)
        sched.stop()
        return sched

    sched = asyncio.run(main())
    assert sched.due == ["act_late"] and fired == ["act_late"]
