"""The engine follows whatever sector it is given: a callback-request sector written only in
YAML here runs without a line of engine code, and tools run in-process or by the session."""

from datetime import UTC, datetime
from pathlib import Path

import yaml

from appliance.dialog.conversation import CallTool, Conversation, Phase, Say
from appliance.dialog.order_tools import BoxTools, session_tools
from appliance.dialog.tool_registry import ToolRegistry
from appliance.store import LocalStore
from blueprints.engine import compose, compose_builtin
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.tools import ToolResult

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
POLICY = Path(__file__).resolve().parents[2] / "blueprints" / "policies" / "default.yaml"

CALLBACK_SECTOR = {
    "sector": "callback_requests", "version": "1.0", "default_intent": "request_callback",
    "intents": {
        "request_callback": {
            "phrases": ["call me back", "callback"], "slots": ["name", "phone", "topic"],
            "confirmation": {"say": "read_back", "after_deny": "again"},
            "submit": {"tool": "callback.schedule", "args": {"reason": "topic", "phone": "phone"},
                       "say": "done"}},
        "confirm": {"role": "confirm", "phrases": ["yes"]},
        "deny": {"role": "deny", "phrases": ["no"]},
        "human": {"role": "escalate", "phrases": ["person"]},
    },
    "slots": {"name": {"type": "name", "prompt": "ask_name"},
              "phone": {"type": "phone", "prompt": "ask_phone"},
              "topic": {"type": "free_text", "prompt": "ask_topic"}},
    "repair": {"max_attempts": 2, "reprompt": "sorry"},
    "escalation": {"say": "bye"},
    "tools_allowed": ["callback.schedule"],
    "prompts": {"greeting": "{restaurant}, how can we help?", "ask_name": "Your name?",
                "ask_phone": "Your number?", "ask_topic": "What is it about?",
                "read_back": "{name} on {phone} about {topic}. Right?", "again": "Once more then.",
                "done": "We will call you back. Bye!", "sorry": "Sorry?", "bye": "Goodbye."},
}


def _callback_blueprint(tmp_path: Path) -> Blueprint:
    sector, overlay = tmp_path / "callback.yaml", tmp_path / "office.yaml"
    sector.write_text(yaml.safe_dump(CALLBACK_SECTOR))
    overlay.write_text(yaml.safe_dump({"tenant": "office", "restaurant": "Acme Office"}))
    return compose(sector, overlay, POLICY)


def _events(actions: list) -> list[str]:
    return [f"say:{a.prompt}" if isinstance(a, Say) else f"tool:{a.call.tool}"
            if isinstance(a, CallTool) else type(a).__name__.lower() for a in actions]


def test_a_sector_written_only_in_yaml_runs(tmp_path: Path) -> None:
    bp = _callback_blueprint(tmp_path)
    store = LocalStore(tmp_path / "box.sqlite3")
    tools = BoxTools(store, bp, "ten_o", "dev_o")
    dialog = Conversation(bp, Correlation(call_id="call_cb"), session_tools(bp))
    seq = _events(dialog.start(NOW))
    for line in ["Please call me back, my name is Ann Lee", "555 123 4567", "my invoice is wrong"]:
        seq += _events(dialog.on_utterance(line, NOW))
    [submit] = dialog.on_utterance("yes", NOW)
    assert seq == ["say:greeting", "say:ask_phone", "say:ask_topic", "say:read_back"]
    assert isinstance(submit, CallTool) and submit.call.tool == "callback.schedule"
    assert submit.call.args == {"reason": "my invoice is wrong", "phone": "5551234567"}
    assert dialog.on_utterance("hello?", NOW) == []  # nothing is heard while the tool runs
    result = tools.run(submit.call, "+1555", NOW)
    assert _events(dialog.on_tool_result(result, NOW)) == ["say:done", "hangup"]
    [follow_up] = tools.book.follow_ups()
    assert (follow_up.kind, follow_up.phone, follow_up.reason) == (
        "callback", "5551234567", "my invoice is wrong")


class _CartOnly:
    """Runs only the add tool in-process, so the read-back goes out as a CallTool."""

    def __init__(self, inner: ToolRegistry) -> None:
        self.inner = inner

    def handles(self, tool: str) -> bool:
        return tool == "order.add_item"

    def run(self, call, caller, now):  # type: ignore[no-untyped-def]
        return self.inner.run(call, caller, now)


def test_a_tool_the_session_runs_is_awaited() -> None:
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    pure = session_tools(bp)
    dialog = Conversation(bp, Correlation(call_id="c"), _CartOnly(pure))
    dialog.on_utterance("a coke", NOW)
    [tool] = dialog.on_utterance("that's all", NOW)
    assert isinstance(tool, CallTool) and tool.call.tool == "order.read_back"
    assert dialog.phase is Phase.CHECKING and dialog.on_utterance("yes", NOW) == []
    result = pure.run(tool.call, None, NOW)
    [say] = dialog.on_tool_result(result, NOW)
    assert isinstance(say, Say) and "2 dollars and 49 cents" in say.text
    assert dialog.phase is Phase.CONFIRMING


def test_a_failing_validation_tool_escalates() -> None:
    bp = compose_builtin("table_reservations", "demo_bistro")
    dialog = Conversation(bp, Correlation(call_id="c"), session_tools(bp))
    [tool] = dialog.on_utterance("table for two tomorrow at 8 pm", NOW)
    assert isinstance(tool, CallTool) and dialog.phase is Phase.CHECKING
    err = ErrorEnvelope(code="store.unavailable", category="unavailable", message="x")
    actions = dialog.on_tool_result(ToolResult(tool="reservation.check", ok=False, error=err), NOW)
    assert _events(actions) == ["say:handoff", "handoff", "hangup"]


def test_a_result_for_another_tool_is_ignored() -> None:
    bp = compose_builtin("table_reservations", "demo_bistro")
    dialog = Conversation(bp, Correlation(call_id="c"), session_tools(bp))
    dialog.on_utterance("table for two tomorrow at 8 pm", NOW)
    stray = ToolResult(tool="order.submit", ok=True, result={})
    assert dialog.on_tool_result(stray, NOW) == [] and dialog.phase is Phase.CHECKING


def test_a_repair_counts_per_slot_and_resets_on_success() -> None:
    bp = compose_builtin("table_reservations", "demo_bistro")
    dialog = Conversation(bp, Correlation(call_id="c"), session_tools(bp))
    assert _events(dialog.on_utterance("table for 40", NOW)) == ["say:party_size_range"]
    assert _events(dialog.on_utterance("table for 30", NOW)) == ["say:party_size_range"]
    assert _events(dialog.on_utterance("for 3", NOW)) == ["say:ask_date"]
    assert dialog.repairs["party_size"] == 0
    assert _events(dialog.on_utterance("hmm", NOW)) == ["say:reprompt_date"]
