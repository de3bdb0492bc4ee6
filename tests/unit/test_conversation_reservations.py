"""The table-reservations sector on the same engine as orders, with real tools and store.

CallTool actions run through the box's tool registry on a temporary SQLite store, exactly
as the call session does, so these are whole conversations down to the booking row.
"""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from appliance.dialog.conversation import Action, CallTool, Conversation, Handoff, Phase, Say
from appliance.dialog.order_tools import BoxTools, session_tools
from appliance.store import LocalStore
from blueprints.engine import compose_builtin
from sync.contracts.errors import Correlation

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # Tuesday 2 pm in New York
CALLER = "+15550100"


class Call:
    """A call as CallSession runs it: engine actions performed, tool results fed back."""

    def __init__(self, store: LocalStore, call_id: str = "call_res") -> None:
        bp = compose_builtin("table_reservations", "demo_bistro")
        self.tools = BoxTools(store, bp, "ten_bistro", "dev_bistro")
        self.dialog = Conversation(bp, Correlation(call_id=call_id), session_tools(bp))
        self.events: list[str] = []
        self.said: list[str] = []
        self.handoffs: list[Handoff] = []

    def perform(self, actions: list[Action]) -> list[str]:
        start = len(self.events)
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, Say):
                self.events.append(f"say:{action.prompt}")
                self.said.append(action.text)
            elif isinstance(action, CallTool):
                self.events.append(f"tool:{action.call.tool}")
                result = self.tools.run(action.call, CALLER, NOW)
                queue[:0] = self.dialog.on_tool_result(result, NOW)
            else:
                self.events.append(type(action).__name__.lower())
                if isinstance(action, Handoff):
                    self.handoffs.append(action)
                    if action.call is not None:
                        self.tools.run(action.call, CALLER, NOW)
        return self.events[start:]

    def start(self) -> list[str]:
        return self.perform(self.dialog.start(NOW))

    def hear(self, text: str) -> list[str]:
        return self.perform(self.dialog.on_utterance(text, NOW))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "box.sqlite3")


@pytest.fixture
def call(store: LocalStore) -> Call:
    return Call(store)


def test_whole_reservation_snapshot(call: Call) -> None:
    call.start()
    call.hear("I'd like to book a table for four tomorrow at 7 pm")
    call.hear("Anna Smith")
    call.hear("yes")
    assert call.events == ["say:greeting", "tool:reservation.check", "say:ask_name",
                           "say:read_back", "tool:reservation.book", "say:booked", "hangup"]
    assert call.said[2] == ("So that's a table for four on Wednesday, November 25th at 7 pm, "
                            "under the name Anna Smith. Is that correct?")
    assert call.dialog.phase is Phase.DONE
    [booking] = call.tools.book.reservations("ten_bistro", date(2026, 11, 25))
    assert (booking.slot_start, booking.party_size, booking.name, booking.phone) == (
        datetime(2026, 11, 25, 19, 0), 4, "Anna Smith", CALLER)


def test_slot_by_slot(call: Call) -> None:
    call.start()
    assert call.hear("I'd like to book a table please") == ["say:ask_party_size"]
    assert call.hear("four") == ["say:ask_date"]
    assert call.hear("on Friday") == ["say:ask_time"]
    assert call.hear("half past seven") == ["tool:reservation.check", "say:ask_name"]
    assert call.hear("it's Lee") == ["say:read_back"]
    assert "on Friday, November 27th at 7:30 pm, under the name Lee" in call.said[-1]


def test_party_too_large_is_refused_and_asked_again(call: Call) -> None:
    call.start()
    assert call.hear("a table for 40 tomorrow at 7 pm") == ["say:party_size_range"]
    assert "1 to 12 people" in call.said[-1] and call.said[-1].endswith("For how many people?")
    assert "party_size" not in call.dialog.values
    # date and time were kept; availability is checked once the party size is known
    assert call.hear("four") == ["tool:reservation.check", "say:ask_name"]


def test_time_outside_opening_hours_is_repaired(call: Call) -> None:
    call.start()
    assert call.hear("a table for two tomorrow at 3 pm") == ["say:outside_hours"]
    assert "at 3 pm on Wednesday, November 25th" in call.said[-1]
    assert call.hear("8 pm then") == ["tool:reservation.check", "say:ask_name"]
    assert call.dialog.values["time"].hour == 20


def test_day_in_the_past_and_time_already_gone(call: Call) -> None:
    call.start()
    assert call.hear("a table for two yesterday") == ["say:date_past"]
    assert call.hear("today at 1 pm") == ["say:time_past"]  # 1 pm < 2 pm local


def test_fully_booked_slot(store: LocalStore, call: Call) -> None:
    other = Call(store, "call_other")
    other.start()
    for line in ["table for 12 tomorrow at 7 pm", "Big Party", "yes", ]:
        other.hear(line)
    second = Call(store, "call_second")
    for line in ["table for 12 tomorrow at 7:15 pm", "Other Party", "yes"]:
        second.hear(line)
    assert call.hear("a table for four tomorrow at 7 pm") == [
        "tool:reservation.check", "say:fully_booked"]
    assert "time" not in call.dialog.values
    assert call.hear("at 8") == ["tool:reservation.check", "say:ask_name"]


def test_repeated_refusal_escalates_to_a_recorded_transfer(call: Call) -> None:
    call.start()
    for _ in range(2):
        assert call.hear("a party of 40") == ["say:party_size_range"]
    assert call.hear("40 people") == ["say:handoff", "handoff", "hangup"]
    [handoff] = call.handoffs
    assert handoff.call is not None and handoff.call.tool == "handoff.transfer"
    [follow_up] = call.tools.book.follow_ups()
    assert follow_up.kind == "transfer" and follow_up.phone == CALLER
    assert follow_up.reason == "repeated repair failure"


def test_deny_at_read_back_starts_again(call: Call) -> None:
    call.hear("table for two tomorrow at 8 pm, my name is Kim")
    assert call.events[-1] == "say:read_back"
    assert call.hear("no") == ["say:after_deny"]
    assert call.dialog.values == {} and call.dialog.phase is Phase.COLLECTING


def test_correction_at_read_back_is_checked_and_read_back_again(call: Call) -> None:
    call.hear("table for two tomorrow at 8 pm, my name is Kim")
    assert call.hear("actually make it 9 pm") == ["tool:reservation.check", "say:read_back"]
    assert "at 9 pm" in call.said[-1]


def test_engine_names_no_sector() -> None:
    source = (Path(__file__).parents[2] / "appliance" / "dialog" / "conversation.py").read_text()
    for word in ("reservation", "party_size", "hours.check", "order.", "order_lines", "pizza"):
        assert word not in source
