"""Corrections of an order while it is taken and at the read-back, driven by the blueprint's
change/remove cue phrases: each is answered with what changed and the cart stays consistent."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from appliance.dialog.conversation import Action, CallTool, Conversation, Phase, Say
from appliance.dialog.line_edits import LineEdit, LineEditor, NotHeld, OverLimit
from appliance.dialog.order_tools import session_tools
from blueprints.engine import BlueprintError, compose, compose_builtin
from sync.contracts.errors import Correlation

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
PIZZA = compose_builtin("restaurant_orders", "demo_pizza")
BLUEPRINTS = Path(__file__).resolve().parents[2] / "blueprints"


class Call:
    """The order conversation with its pure tools in-process, recording event names."""

    def __init__(self) -> None:
        self.dialog = Conversation(PIZZA, Correlation(call_id="call_fix"), session_tools(PIZZA))
        self.events = [_event(a) for a in self.dialog.start(NOW)]
        self.said: list[str] = []
        self.last: list[Action] = []

    def hear(self, text: str) -> str:
        self.last = self.dialog.on_utterance(text, NOW)
        self.events += [_event(a) for a in self.last]
        self.said += [a.text for a in self.last if isinstance(a, Say)]
        return self.said[-1] if self.said else ""

    def cart(self) -> list[tuple[str, int, str | None, list[str]]]:
        """(item, quantity, size, modifiers as 'kind:option') per cart line."""
        return [(li["item_id"], li["quantity"], li["size"],
                 [f"{m['kind']}:{m['option_id']}" for m in li["modifiers"]])
                for li in self.dialog.values.get("lines", [])]


def _event(a: Action) -> str:
    if isinstance(a, Say):
        return f"say:{a.prompt}"
    return f"tool:{a.call.tool}" if isinstance(a, CallTool) else type(a).__name__.lower()


@pytest.fixture
def call() -> Call:
    c = Call()
    c.hear("a large pizza with onions and two cokes")
    return c


def test_size_change_of_the_last_line_that_takes_a_size(call: Call) -> None:
    said = call.hear("actually make that a medium")
    assert said == "Okay, that's now one medium pizza with onions. What else can I get for you?"
    assert call.cart() == [("pizza", 1, "medium", ["add:onions"]), ("coke", 2, None, [])]
    call.hear("make it large")
    assert call.cart()[0][2] == "large"


def test_modifiers_on_the_nth_line(call: Call) -> None:
    call.hear("and a small pizza")
    call.hear("add ham to the first pizza")
    call.hear("no onions on the first one")
    call.hear("add olives to the last one")
    assert call.cart() == [("pizza", 1, "large", ["add:ham"]), ("coke", 2, None, []),
                           ("pizza", 1, "small", ["add:olives"])]
    assert call.said[-1].startswith("Okay, that's now one small pizza with olives.")


def test_a_line_that_cannot_take_the_change_is_refused_by_the_tool(call: Call) -> None:
    said = call.hear("no onions on the second one")
    assert said.startswith("We can't make the coke that way.")
    assert call.cart() == [("pizza", 1, "large", ["add:onions"]), ("coke", 2, None, [])]
    assert call.events[-1] == "say:error+ask_more" and call.dialog.repairs["lines"] == 1


def test_remove_a_line_by_item(call: Call) -> None:
    assert call.hear("remove the coke") == (
        "Okay, I've taken off two cokes. What else can I get for you?")
    assert call.cart() == [("pizza", 1, "large", ["add:onions"])]


@pytest.mark.parametrize("text", ["cancel the garlic bread", "forget the sprite",
                                  "remove the fifth one"])
def test_removing_what_the_cart_does_not_hold_changes_nothing(call: Call, text: str) -> None:
    said = call.hear(text)
    assert said.startswith("Sorry, I can't find ") and "in your order." in said
    assert len(call.cart()) == 2


def test_dont_forget_adds_instead_of_removing(call: Call) -> None:
    call.hear("and don't forget the garlic bread")
    assert [li[0] for li in call.cart()] == ["pizza", "coke", "garlic_bread"]


def test_a_correction_and_a_new_dish_in_one_breath(call: Call) -> None:
    said = call.hear("make it a medium and add a garlic bread")
    assert said == "Okay, that's now one medium pizza with onions. One garlic bread. Anything else?"
    assert call.events[-1] == "say:line_changed+added"
    assert call.cart() == [("pizza", 1, "medium", ["add:onions"]), ("coke", 2, None, []),
                           ("garlic_bread", 1, None, [])]


def test_change_one_dish_into_another_keeps_quantity(call: Call) -> None:
    assert call.hear("change the cokes to sprites").startswith("Okay, that's now two sprites.")
    assert call.cart()[1] == ("sprite", 2, None, [])


def test_corrections_during_ordering_snapshot() -> None:
    c = Call()
    for line in ["a large pizza and two cokes", "actually make that a medium",
                 "no onions on the first one", "change the cokes to sprites",
                 "remove the garlic bread", "forget the pizza", "that's all"]:
        c.hear(line)
    assert c.events == ["say:greeting", "say:added", "say:line_changed+ask_more",
                        "say:line_changed+ask_more", "say:line_changed+ask_more",
                        "say:line_missing+ask_more", "say:line_removed+ask_more", "say:read_back"]
    assert c.cart() == [("sprite", 2, None, [])]
    assert c.said[-1] == "So that's two sprites, for a total of 4 dollars and 98 cents. Is that correct?"


def test_correction_at_read_back_updates_the_cart_and_reads_back_again() -> None:
    c = Call()
    c.hear("a large pizza and two cokes")
    c.hear("that's all")
    said = c.hear("no, make it a medium")
    assert said == ("Okay, that's now one medium pizza. So that's one medium pizza and two cokes, "
                    "for a total of 18 dollars and 97 cents. Is that correct?")
    c.hear("remove the cokes")
    assert c.dialog.phase is Phase.CONFIRMING
    [submit] = c.dialog.on_utterance("yes", NOW)
    assert isinstance(submit, CallTool) and submit.call.tool == "order.submit"
    assert [(li["item_id"], li["size"], li["unit_price_cents"]) for li in submit.call.args["lines"]] == [
        ("pizza", "medium", 1399)]
    assert c.events == ["say:greeting", "say:added", "say:read_back",
                        "say:line_changed+read_back", "say:line_removed+read_back"]


def test_removing_the_last_line_at_read_back_asks_for_an_order_again() -> None:
    c = Call()
    c.hear("just a coke, that's all")
    assert c.hear("cancel the coke") == (
        "Okay, I've taken off one coke. You haven't ordered anything yet. What would you like?")
    assert c.dialog.phase is Phase.COLLECTING and c.cart() == []


def test_over_limit_correction_is_refused(call: Call) -> None:
    said = call.hear("make that 30 cokes")
    assert said == ("Sorry, we can take at most 20 cokes per order on the phone. "
                    "What else can I get for you?")
    assert call.cart()[1] == ("coke", 2, None, [])


CART = [{"item_id": "pizza", "quantity": 1, "size": "large",
         "modifiers": [{"kind": "add", "option_id": "onions"}]},
        {"item_id": "coke", "quantity": 2, "size": None, "modifiers": []},
        {"item_id": "pizza", "quantity": 1, "size": "small", "modifiers": []}]


@pytest.mark.parametrize(("text", "change", "remove", "edit"), [
    ("make it large", True, False, LineEdit(2, {**CART[2], "size": "large"})),
    ("make the large pizza a medium", True, False, LineEdit(0, {**CART[0], "size": "medium"})),
    ("make that two", True, False, LineEdit(2, {**CART[2], "quantity": 2})),
    ("make those cans", True, False, LineEdit(1, {**CART[1], "container": "can"})),
    ("the last one thin crust", False, False, LineEdit(2, {**CART[2], "styles": ["thin_crust"]})),
    ("forget the onions", False, True, LineEdit(0, {**CART[0], "modifiers": []})),
    ("remove the large pizza", False, True, LineEdit(0, None)),
    ("cancel the last one", False, True, LineEdit(2, None)),
    ("a sprite instead of the coke", True, False,
     LineEdit(1, {"item_id": "sprite", "quantity": 2, "size": None, "modifiers": []})),
    ("no onions on the third pizza", False, False, NotHeld("a third pizza")),
    ("make it 30", True, False, OverLimit("pizzas", 20)),
    ("make it quick", True, False, None),
    ("and two pizzas, the first one with ham", False, False, None),
    ("remove the coke and add a sprite", False, True,
     LineEdit(1, None, ({"item_id": "sprite", "quantity": 1, "size": None, "modifiers": []},))),
    ("I'd like a coke", False, False, None),
])
def test_line_editor(text: str, change: bool, remove: bool, edit: object) -> None:
    assert LineEditor(PIZZA.menu).edit(text, CART, change, remove) == edit  # type: ignore[arg-type]


def test_a_blueprint_with_corrections_must_name_their_prompts(tmp_path: Path) -> None:
    sector = yaml.safe_load((BLUEPRINTS / "sectors" / "restaurant_orders.yaml").read_text())
    del sector["prompts"]["line_missing"]
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(sector))
    with pytest.raises(BlueprintError, match="slots.lines.missing: no prompt 'line_missing'"):
        compose(path, BLUEPRINTS / "tenants" / "demo_pizza.yaml",
                BLUEPRINTS / "policies" / "default.yaml")
