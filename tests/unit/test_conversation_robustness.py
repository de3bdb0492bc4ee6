"""What the engine does with input it cannot fully use: quantities over the menu's limit,
sound-alike repairs, unsure transcripts, and random, garbled or enormous utterances."""

import random
from datetime import UTC, datetime

import pytest

from appliance.dialog.conversation import Action, CallTool, Conversation, Handoff, Phase, Say
from appliance.dialog.order_tools import session_tools
from blueprints.engine import compose_builtin
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
PIZZA = compose_builtin("restaurant_orders", "demo_pizza")
MENU_IDS = {i.id for i in PIZZA.menu.items}  # type: ignore[union-attr]


def _dialog(bp: Blueprint = PIZZA) -> Conversation:
    return Conversation(bp, Correlation(call_id="call_rob"), session_tools(bp))


def _events(actions: list[Action]) -> list[str]:
    return [f"say:{a.prompt}" if isinstance(a, Say) else f"tool:{a.call.tool}"
            if isinstance(a, CallTool) else type(a).__name__.lower() for a in actions]


def _text(actions: list[Action]) -> str:
    return " ".join(a.text for a in actions if isinstance(a, Say))


def test_over_limit_is_refused_by_the_blueprint_prompt_and_never_added() -> None:
    d = _dialog()
    actions = d.on_utterance("twenty five pizzas please", NOW)
    assert _text(actions).startswith("Sorry, we can take at most 20 pizzas per order on the phone.")
    assert _events(actions) == ["say:too_many+nothing_ordered"] and "lines" not in d.values
    actions = d.on_utterance("a coke and 30 large pizzas", NOW)
    assert _events(actions) == ["say:noted+too_many+ask_more"]
    assert _text(actions).startswith("I have one coke. Sorry, we can take at most 20 pizzas")
    assert [li["item_id"] for li in d.values["lines"]] == ["coke"]


def test_the_limit_holds_for_the_whole_order_however_it_is_split() -> None:
    d = _dialog()
    d.on_utterance("fifteen pizzas", NOW)
    actions = d.on_utterance("and ten more pizzas and a coke", NOW)
    assert _events(actions) == ["say:noted+too_many+ask_more"]
    assert [(li["item_id"], li["quantity"]) for li in d.values["lines"]] == [
        ("pizza", 15), ("coke", 1)]
    assert _events(d.on_utterance("make that twenty five", NOW)) == ["say:too_many+ask_more"]


def test_repeated_over_limit_escalates_like_any_repair() -> None:
    d = _dialog()
    d.on_utterance("40 pizzas", NOW)
    d.on_utterance("50 pizzas", NOW)
    assert _events(d.on_utterance("60 pizzas", NOW)) == ["say:handoff", "handoff", "hangup"]


def test_a_sound_alike_repair_names_what_was_understood() -> None:
    d = _dialog()
    actions = d.on_utterance("a large pizza with pepperoney", NOW)
    assert _events(actions) == ["say:heard_as"]
    assert _text(actions) == ("I took that as pepperoni: one large pizza with pepperoni. "
                              "Anything else?")
    assert _events(d.on_utterance("a large pizza with ham", NOW)) == ["say:added"]


def test_an_unsure_transcript_is_asked_again_and_never_acted_on() -> None:
    d = _dialog()
    actions = d.on_utterance("a large pizza", NOW, confidence=0.2)
    assert _events(actions) == ["say:unclear"] and "lines" not in d.values
    d.on_utterance("a large pizza", NOW, confidence=0.9)
    d.on_utterance("that's all", NOW)
    assert _events(d.on_utterance("yes", NOW, confidence=0.1)) == ["say:unclear"]
    assert d.phase is Phase.CONFIRMING


def test_repeated_unsure_turns_count_as_repair_failures_and_escalate() -> None:
    d = _dialog()
    assert _events(d.on_utterance("mumble", NOW, confidence=0.1)) == ["say:unclear"]
    assert _events(d.on_utterance("mumble", NOW, confidence=0.1)) == ["say:unclear"]
    actions = d.on_utterance("mumble", NOW, confidence=0.1)
    assert _events(actions) == ["say:handoff", "handoff", "hangup"]
    assert isinstance(actions[1], Handoff) and actions[1].reason == "repeated repair failure"


def test_the_policy_count_of_unsure_turns_escalates_even_between_good_turns() -> None:
    d = _dialog()
    assert PIZZA.policy.min_asr_confidence == pytest.approx(0.35)
    for dish in ["a coke", "a sprite", "a water"][:PIZZA.policy.max_low_confidence_turns]:
        assert _events(d.on_utterance("uh", NOW, confidence=0.2)) == ["say:unclear"]
        assert _events(d.on_utterance(dish, NOW)) == ["say:added"]  # resets the slot's repairs
    actions = d.on_utterance("uh", NOW, confidence=0.2)
    assert _events(actions) == ["say:handoff", "handoff", "hangup"]
    assert isinstance(actions[1], Handoff)
    assert actions[1].reason == "repeated low speech recognition confidence"


_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz      ", "0123456789 .,;:!?'-", "äöüßéèñçøåœ漢字かなﾃｽﾄ😀🍕\u200b\u0301",
    "\x00\x07\t\n\r\x1b\u2028\ufeff", "pizza coke large no extra two the make remove cancel first ",
]


def _random_utterance(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.05:
        return ""
    if kind < 0.1:
        return rng.choice(["pizza ", "no ", "the second one ", "a "]) * rng.randint(500, 3000)
    alphabet = "".join(rng.sample(_ALPHABETS, rng.randint(1, len(_ALPHABETS))))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120)))


@pytest.mark.parametrize("seed", range(25))
def test_random_input_never_raises_and_never_adds_an_item_off_the_menu(seed: int) -> None:
    rng = random.Random(seed)
    d = _dialog()
    d.start(NOW)
    for _ in range(rng.randint(1, 12)):
        if d.phase not in (Phase.COLLECTING, Phase.CONFIRMING):
            break
        actions = d.on_utterance(_random_utterance(rng), NOW, confidence=rng.random())
        assert actions and isinstance(actions[0], Say | CallTool)  # never silence
        assert {li["item_id"] for li in d.values.get("lines", [])} <= MENU_IDS


@pytest.mark.parametrize("text", ["", "   ", "\x00\x00", "????", "ñ" * 10_000, "🍕🍕🍕",
                                  "zxqv blorp frmb", "the the the the"])
def test_empty_or_garbled_input_gets_a_repair_turn_and_no_item(text: str) -> None:
    d = _dialog()
    actions = d.on_utterance(text, NOW)
    assert _events(actions) == ["say:not_understood"] and not d.values.get("lines")
