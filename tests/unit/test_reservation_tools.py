"""reservation.check/book, handoff.transfer and callback.schedule against a real SQLite store."""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.dialog.order_tools import BoxTools, OrderTools
from appliance.store import LocalStore
from appliance.store.migrations import MIGRATIONS
from blueprints.engine import compose_builtin
from sync.contracts.errors import Correlation
from sync.contracts.tools import ToolCall, ToolResult

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
BISTRO = compose_builtin("table_reservations", "demo_bistro")  # 24 covers per 30-minute slot


@pytest.fixture
def tools(tmp_path: Path) -> BoxTools:
    return BoxTools(LocalStore(tmp_path / "box.sqlite3"), BISTRO, "ten_b", "dev_b")


def _run(tools: BoxTools, tool: str, key: str | None = None, **args: object) -> ToolResult:
    call = ToolCall(tool=tool, idempotency_key=key, correlation=Correlation(call_id="call_r"),
                    args=args)
    return tools.run(call, "+15550100", NOW)


def _book(tools: BoxTools, key: str, party: int, at: str = "19:00") -> ToolResult:
    return _run(tools, "reservation.book", key, date="2026-11-25", time=at, party_size=party,
                name="Kim")


def test_check_reports_capacity_of_the_slot(tools: BoxTools) -> None:
    free = _run(tools, "reservation.check", date="2026-11-25", time="19:10", party_size=4)
    assert free.result == {"available": True, "slot_start": "2026-11-25T19:00:00",
                           "covers_left": 24}
    assert _book(tools, "k1", 20, "19:20").ok
    full = _run(tools, "reservation.check", date="2026-11-25", time="19:00", party_size=6)
    assert full.result and (full.result["available"], full.result["covers_left"]) == (False, 4)
    later = _run(tools, "reservation.check", date="2026-11-25", time="19:30", party_size=6)
    assert later.result and later.result["available"] is True


def test_book_is_idempotent_per_key(tools: BoxTools) -> None:
    first, again = _book(tools, "call_r:reservation.book", 4), _book(tools, "call_r:reservation.book", 4)
    assert first.result and again.result
    assert first.result["created"] is True and again.result["created"] is False
    assert again.result["reservation_id"] == first.result["reservation_id"]
    [only] = tools.book.reservations("ten_b", datetime(2026, 11, 25).date())
    assert only.phone == "+15550100" and only.call_id == "call_r"


def test_retry_of_a_booking_succeeds_even_when_the_slot_filled_since(tools: BoxTools) -> None:
    assert _book(tools, "mine", 4).ok
    assert _book(tools, "theirs", 20).ok
    assert _book(tools, "mine", 4).ok


def test_the_unique_constraint_backs_the_key(tools: BoxTools, tmp_path: Path) -> None:
    _book(tools, "dup", 2)
    conn = sqlite3.connect(tmp_path / "box.sqlite3")
    with pytest.raises(sqlite3.IntegrityError, match="idempotency_key"):
        conn.execute("INSERT INTO reservations SELECT 'other', tenant_id, device_id, call_id, "
                     "idempotency_key, slot_start, party_size, name, phone, status, "
                     "blueprint_hash, created_at FROM reservations")


@pytest.mark.parametrize(("party", "at", "code"), [
    (30, "19:00", "reservation.full"),
    (2, "15:00", "reservation.closed"),
])
def test_book_refuses(tools: BoxTools, party: int, at: str, code: str) -> None:
    result = _book(tools, "k", party, at)
    assert result.error and (result.error.code, result.error.category) == (code, "validation")


def test_book_needs_an_idempotency_key(tools: BoxTools) -> None:
    result = _run(tools, "reservation.book", None, date="2026-11-25", time="19:00",
                  party_size=2, name="Kim")
    assert result.error and result.error.code == "tool.no_idempotency_key"


def test_transfer_and_callback_are_recorded_once(tools: BoxTools) -> None:
    transfer = _run(tools, "handoff.transfer", "call_r:handoff.transfer", reason="asked",
                    summary={"party_size": "four"})
    again = _run(tools, "handoff.transfer", "call_r:handoff.transfer", reason="asked")
    assert transfer.result and again.result
    assert transfer.result["follow_up_id"] == again.result["follow_up_id"]
    callback = _run(tools, "callback.schedule", "call_r:callback.schedule", reason="x",
                    phone="5551234567", not_before="2026-11-25T09:00:00Z")
    assert callback.result and callback.result["phone"] == "5551234567"
    kinds = [(f.kind, f.summary) for f in tools.book.follow_ups()]
    assert kinds == [("transfer", {"party_size": "four"}), ("callback", {})]


def test_tools_are_gated_by_the_blueprint(tmp_path: Path) -> None:
    pizza = OrderTools(LocalStore(tmp_path / "p.sqlite3"), compose_builtin("restaurant_orders", "demo_pizza"),
                       "ten_p", "dev_p")
    result = pizza.run(ToolCall(tool="reservation.book", idempotency_key="k",
                                args={"date": "2026-11-25", "time": "19:00", "party_size": 2,
                                      "name": "Kim"}), None, NOW)
    assert result.error and result.error.code == "tool.not_allowed"


def test_migration_three_is_appended() -> None:
    assert len(MIGRATIONS) >= 3 and "CREATE TABLE reservations" in MIGRATIONS[2]
