from datetime import UTC, datetime

import pytest

from appliance.dialog.dialog_machine import CallTool, Handoff, Hangup, OrderDialog, Phase, Say
from blueprints.engine import compose_builtin
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.tools import ToolResult

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


@pytest.fixture
def dialog() -> OrderDialog:
    return OrderDialog(compose_builtin("restaurant_orders", "demo_pizza"),
                       Correlation(call_id="call_test"))


def _events(actions: list) -> list[str]:
    out = []
    for a in actions:
        if isinstance(a, Say):
            out.append(f"say:{a.prompt}")
        elif isinstance(a, CallTool):
            out.append(f"tool:{a.call.tool}")
        else:
            out.append(type(a).__name__.lower())
    return out


def test_whole_conversation_snapshot(dialog: OrderDialog) -> None:
    seq = _events(dialog.start(NOW))
    for line in ["I'd like a large pepperoni pizza and two cokes", "can I get a sushi roll",
                 "no that's all", "yes"]:
        seq += _events(dialog.on_utterance(line, NOW))
    assert dialog.phase is Phase.SUBMITTING
    seq += _events(dialog.on_tool_result(
        ToolResult(tool="order.submit", ok=True, result={"number": 12}), NOW))
    assert seq == ["say:greeting", "say:added", "say:unknown_item", "say:read_back",
                   "tool:order.submit", "say:confirmed", "hangup"]
    assert dialog.phase is Phase.DONE


def test_off_menu_item_gets_spoken_repair_and_never_reaches_the_order(dialog: OrderDialog) -> None:
    dialog.start(NOW)
    actions = dialog.on_utterance("I want a burrito", NOW)
    assert isinstance(actions[0], Say) and actions[0].prompt == "unknown_item"
    assert "burrito" in actions[0].text
    assert dialog.cart == []
    dialog.on_utterance("a small pizza", NOW)
    dialog.on_utterance("that's all", NOW)
    tool = dialog.on_utterance("yes", NOW)[0]
    assert isinstance(tool, CallTool)
    assert [li["item_id"] for li in tool.call.args["lines"]] == ["pizza"]
    assert tool.call.idempotency_key == "call_test:order.submit"


def test_read_back_states_total(dialog: OrderDialog) -> None:
    dialog.on_utterance("a large pizza and a coke", NOW)
    say = dialog.on_utterance("that's all", NOW)[0]
    assert isinstance(say, Say) and "19 dollars and 48 cents" in say.text


def test_deny_at_read_back_starts_over(dialog: OrderDialog) -> None:
    dialog.on_utterance("a large pizza", NOW)
    dialog.on_utterance("that's all", NOW)
    assert _events(dialog.on_utterance("no", NOW)) == ["say:after_deny"]
    assert dialog.cart == [] and dialog.phase is Phase.ORDERING


def test_repeated_misunderstanding_hands_off(dialog: OrderDialog) -> None:
    assert _events(dialog.on_utterance("blah blah", NOW)) == ["say:not_understood"]
    assert _events(dialog.on_utterance("mumble", NOW)) == ["say:not_understood"]
    assert _events(dialog.on_utterance("hmm", NOW)) == ["say:handoff", "handoff", "hangup"]


def test_asking_for_a_person_hands_off(dialog: OrderDialog) -> None:
    actions = dialog.on_utterance("can I talk to a real person", NOW)
    assert any(isinstance(a, Handoff) for a in actions) and isinstance(actions[-1], Hangup)


def test_failed_submit_hands_off_instead_of_confirming(dialog: OrderDialog) -> None:
    dialog.on_utterance("a coke", NOW)
    dialog.on_utterance("that's all", NOW)
    dialog.on_utterance("yes", NOW)
    err = ErrorEnvelope(code="store.unavailable", category="unavailable", message="x")
    actions = dialog.on_tool_result(ToolResult(tool="order.submit", ok=False, error=err), NOW)
    assert _events(actions) == ["say:handoff", "handoff", "hangup"]


def test_understood_part_is_kept_when_another_part_is_off_menu(dialog: OrderDialog) -> None:
    [say] = dialog.on_utterance("a large pizza and a sushi roll", NOW)
    assert isinstance(say, Say) and say.text.startswith("I have one large pizza.")
    assert "sushi roll" in say.text
    assert [li.item_id for li in dialog.cart] == ["pizza"]
