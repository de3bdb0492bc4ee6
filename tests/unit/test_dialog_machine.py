"""The restaurant order flow, run on the generic conversation engine (was OrderDialog)."""

from datetime import UTC, datetime

import pytest

from appliance.dialog.conversation import CallTool, Conversation, Handoff, Hangup, Phase, Say
from appliance.dialog.order_tools import session_tools
from blueprints.engine import compose_builtin
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.tools import ToolResult

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


@pytest.fixture
def dialog() -> Conversation:
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    return Conversation(bp, Correlation(call_id="call_test"), session_tools(bp))


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


def _cart(dialog: Conversation) -> list[str]:
    return [li["item_id"] for li in dialog.values.get("lines", [])]


def test_whole_conversation_snapshot(dialog: Conversation) -> None:
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


def test_demo_call_wording(dialog: Conversation) -> None:
    said = [a.text for a in dialog.start(NOW) if isinstance(a, Say)]
    for line in ["Hi, I'd like a large pepperoni pizza and two cokes please.",
                 "Can I also get a sushi roll?", "No, that's all.", "Yes, that's right."]:
        said += [a.text for a in dialog.on_utterance(line, NOW) if isinstance(a, Say)]
    said += [a.text for a in dialog.on_tool_result(ToolResult(
        tool="order.submit", ok=True, result={"order_id": "ord_x", "number": 7, "total_cents": 2197,
                                              "created": True}), NOW) if isinstance(a, Say)]
    assert said[1] == "One large pizza with pepperoni and two cokes. Anything else?"
    assert said[2].startswith("Sorry, we don't have sushi roll on our menu.")
    assert said[3] == ("So that's one large pizza with pepperoni and two cokes, for a total of "
                       "21 dollars and 97 cents. Is that correct?")
    assert said[4].startswith("Thank you! Your order number is 7. It will be ready in about 20")


def test_off_menu_item_gets_spoken_repair_and_never_reaches_the_order(dialog: Conversation) -> None:
    dialog.start(NOW)
    actions = dialog.on_utterance("I want a burrito", NOW)
    assert isinstance(actions[0], Say) and actions[0].prompt == "unknown_item"
    assert "burrito" in actions[0].text
    assert _cart(dialog) == []
    dialog.on_utterance("a small pizza", NOW)
    dialog.on_utterance("that's all", NOW)
    tool = dialog.on_utterance("yes", NOW)[0]
    assert isinstance(tool, CallTool)
    assert [li["item_id"] for li in tool.call.args["lines"]] == ["pizza"]
    assert tool.call.idempotency_key == "call_test:order.submit"


def test_read_back_states_total(dialog: Conversation) -> None:
    dialog.on_utterance("a large pizza and a coke", NOW)
    say = dialog.on_utterance("that's all", NOW)[0]
    assert isinstance(say, Say) and "19 dollars and 48 cents" in say.text


def test_lines_and_done_in_one_utterance_read_back_at_once(dialog: Conversation) -> None:
    assert _events(dialog.on_utterance("just a coke, that's all", NOW)) == ["say:read_back"]


def test_deny_at_read_back_starts_over(dialog: Conversation) -> None:
    dialog.on_utterance("a large pizza", NOW)
    dialog.on_utterance("that's all", NOW)
    assert _events(dialog.on_utterance("no", NOW)) == ["say:after_deny"]
    assert _cart(dialog) == [] and dialog.phase is Phase.COLLECTING


def test_adding_at_read_back_reopens_the_order(dialog: Conversation) -> None:
    dialog.on_utterance("a large pizza", NOW)
    dialog.on_utterance("that's all", NOW)
    assert _events(dialog.on_utterance("and a sprite", NOW)) == ["say:added"]
    assert dialog.phase is Phase.COLLECTING and _cart(dialog) == ["pizza", "sprite"]
    assert _events(dialog.on_utterance("no", NOW)) == ["say:read_back"]


def test_done_with_nothing_ordered_asks_again(dialog: Conversation) -> None:
    assert _events(dialog.on_utterance("that's all", NOW)) == ["say:nothing_ordered"]


def test_repeated_misunderstanding_hands_off(dialog: Conversation) -> None:
    assert _events(dialog.on_utterance("blah blah", NOW)) == ["say:not_understood"]
    assert _events(dialog.on_utterance("mumble", NOW)) == ["say:not_understood"]
    actions = dialog.on_utterance("hmm", NOW)
    assert _events(actions) == ["say:handoff", "handoff", "hangup"]
    handoff = actions[1]
    assert isinstance(handoff, Handoff) and handoff.call is not None
    assert handoff.call.tool == "callback.schedule"
    assert handoff.call.args["reason"] == "repeated repair failure"


def test_asking_for_a_person_hands_off(dialog: Conversation) -> None:
    actions = dialog.on_utterance("can I talk to a real person", NOW)
    assert any(isinstance(a, Handoff) for a in actions) and isinstance(actions[-1], Hangup)


def test_turn_limit_hands_off(dialog: Conversation) -> None:
    for _ in range(dialog.blueprint.policy.max_turns):
        dialog.on_utterance("a coke", NOW)
    assert _events(dialog.on_utterance("a coke", NOW)) == ["say:handoff", "handoff", "hangup"]


def test_failed_submit_hands_off_instead_of_confirming(dialog: Conversation) -> None:
    dialog.on_utterance("a coke", NOW)
    dialog.on_utterance("that's all", NOW)
    dialog.on_utterance("yes", NOW)
    err = ErrorEnvelope(code="store.unavailable", category="unavailable", message="x")
    actions = dialog.on_tool_result(ToolResult(tool="order.submit", ok=False, error=err), NOW)
    assert _events(actions) == ["say:handoff", "handoff", "hangup"]


def test_understood_part_is_kept_when_another_part_is_off_menu(dialog: Conversation) -> None:
    [say] = dialog.on_utterance("a large pizza and a sushi roll", NOW)
    assert isinstance(say, Say) and say.text.startswith("I have one large pizza.")
    assert say.prompt == "noted+unknown_item" and "sushi roll" in say.text
    assert _cart(dialog) == ["pizza"]


def test_old_import_path_still_builds_the_order_dialog() -> None:
    from appliance.dialog.dialog_machine import OrderDialog

    d = OrderDialog(compose_builtin("restaurant_orders", "demo_pizza"), Correlation(call_id="c"))
    assert _events(d.on_utterance("two cokes", NOW)) == ["say:added"]


def test_the_confirmed_order_carries_the_whole_parse(dialog: Conversation) -> None:
    dialog.on_utterance("a gluten free pizza with no extra cheese and two cans of coke", NOW)
    dialog.on_utterance("that's all", NOW)
    [submit] = dialog.on_utterance("yes", NOW)
    assert isinstance(submit, CallTool)
    pizza, coke = submit.call.args["lines"]
    assert (pizza["styles"], pizza["declined"]) == (["gluten free crust"], [{"kind": "extra", "name": "cheese"}])
    assert pizza["unit_price_cents"] == 1399 + 200
    assert (coke["quantity"], coke["container"]) == (2, "can")
