"""The setup UI shows who waits for a person, with the handover summary, and how each call
was routed (engines, failovers), on / and as JSON."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from litestar.testing import TestClient

from appliance.config import BoxIdentity
from appliance.setup.app import create_app
from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions
from appliance.store.reservations import ReservationBook

T0 = datetime(2025, 5, 2, 17, 45, tzinfo=UTC)


def test_pending_follow_up_is_listed_on_the_index_and_the_api(tmp_path: Path) -> None:
    db = tmp_path / "box.sqlite3"
    store = LocalStore(db)
    book = ReservationBook(store)
    book.record_follow_up(
        kind="callback", tenant_id="ten_s", device_id="dev_s", call_id="call-1",
        phone="+31201234567", reason="caller asked for a person",
        summary={"reason": "caller asked for a person", "caller": "+31201234567",
                 "intent": "order_food", "heard": "a pepperoni <large>", "cart": "",
                 "transfer": "refused"},
        not_before=None, idempotency_key="call-1:callback", now=T0)
    book.close()
    store.close()
    identity = BoxIdentity(data_dir=tmp_path)

    with TestClient(app=create_app(identity, db)) as client:
        page = client.get("/")
        api = client.get("/api/follow-ups")

    assert page.status_code == 200
    assert 'id="follow-ups"' in page.text and "+31201234567" in page.text
    assert "caller asked for a person" in page.text
    assert "Heard: a pepperoni &lt;large&gt;" in page.text  # escaped, never raw HTML
    [fu] = api.json()
    assert fu["kind"] == "callback" and fu["phone"] == "+31201234567"
    assert fu["lines"] == ["Wanted: order_food", "Heard: a pepperoni <large>", "Transfer: refused"]
    assert fu["created_at"].startswith("2025-05-02T17:45")


def test_each_recent_call_shows_its_routing_and_failovers_on_the_page_and_as_json(
        tmp_path: Path) -> None:
    db = tmp_path / "box.sqlite3"
    store = LocalStore(db)
    sessions = CallSessions(store)
    routing = {"asr": ["whisper-tiny.en", "whisper-base"], "tts": ["piper-joe"],
               "nlu": ["rule-nlu"], "reasons": ["asr: whisper-tiny.en chosen, then whisper-base"],
               "human_fallback": None}
    rec = sessions.open(call_id="call-r", tenant_id="ten_s", device_id="dev_s", routing=routing,
                        now=T0)
    sessions.add_failover(rec.session_id, {"from_provider": "whisper-tiny.en",
                                           "to_provider": "whisper-base",
                                           "error": "worker gone <EOF>", "at_turn": 2}, T0)
    store.record_turn("call-r", "caller", "a large pizza", T0)
    sessions.open(call_id="call-s", tenant_id="ten_s", device_id="dev_s", now=T0,
                  routing={"asr": [], "tts": [], "nlu": [], "reasons": [],
                           "human_fallback": "no allowed provider can serve the call"})
    store.record_turn("call-s", "agent", "We will call you back.", T0)
    sessions.close()
    store.close()

    with TestClient(app=create_app(BoxIdentity(data_dir=tmp_path), db)) as client:
        page = client.get("/")
        api = client.get("/api/calls/call-r/session")
        missing = client.get("/api/calls/nope/session")

    assert page.status_code == 200 and api.status_code == 200
    line = ("Routing: asr whisper-tiny.en, tts piper-joe, nlu rule-nlu; failover whisper-tiny.en "
            "-> whisper-base at turn 2 (worker gone <EOF>)")
    assert html.escape(line) in page.text  # escaped, never raw HTML
    assert "Routing: sent to staff (no allowed provider can serve the call)" in page.text
    body = api.json()
    assert body["line"] == line and body["routing"]["asr"] == ["whisper-tiny.en", "whisper-base"]
    assert [f["to_provider"] for f in body["failovers"]] == ["whisper-base"]
    assert missing.status_code == 404 and missing.json()["code"] == "call_session.not_found"
