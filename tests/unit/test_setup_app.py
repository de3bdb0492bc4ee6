"""The setup UI shows who waits for a person, with the handover summary, on / and as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from litestar.testing import TestClient

from appliance.config import BoxIdentity
from appliance.setup.app import create_app
from appliance.store import LocalStore
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
