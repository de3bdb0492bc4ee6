"""Sound-alike repair of what Whisper mishears (speech-probe notes), and what it must not do."""

from __future__ import annotations

import pytest

from appliance.dialog.fuzzy_match import SoundAlike, edit_distance, sound_key
from appliance.dialog.menu_lexicon import NUMBER, Tag
from appliance.dialog.order_parser import OrderParser, ParsedLine
from blueprints.engine import compose_builtin
from blueprints.menu import MenuItem, MenuOption


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    """The demo menu plus tuna and fanta, the words the probe saw misheard."""
    menu = compose_builtin("restaurant_orders", "demo_pizza").menu
    assert menu is not None
    pizza = menu.item("pizza")
    items = [i.model_copy(update={"options": [*i.options, "tuna"]}) if i.id == "pizza" else i
             for i in menu.items]
    items.append(MenuItem(id="fanta", name="fanta", plural="fantas", category="drink",
                          synonyms=["fanta", "fantas", "orange fanta"], price=249))
    options = {**menu.options, "tuna": MenuOption(name="tuna", synonyms=["tuna", "tuna fish"])}
    assert pizza.sizes
    return OrderParser(menu.model_copy(update={"items": items, "options": options}))


def test_sound_keys_of_probe_errors() -> None:
    assert sound_key("vantas") == sound_key("fantas") == "FNTS"
    assert sound_key("sex") == sound_key("six")
    assert sound_key("tune a") == sound_key("tuna")
    assert sound_key("banana") != sound_key("fanta")
    assert edit_distance("vantas", "fantas", 1) == 1
    assert edit_distance("pepperoni", "pineapple", 2) == 3  # beyond the limit: limit + 1


@pytest.mark.parametrize("heard, line, repaired", [
    ("a large pizza with tune a", ParsedLine("pizza", 1, "large", (("add", "tuna"),)),
     ("tune a", "tuna")),
    ("two vantas please", ParsedLine("fanta", 2), ("vantas", "fantas")),
    ("sex large pepperoni pizzas", ParsedLine("pizza", 6, "large", (("add", "pepperoni"),)),
     ("sex", "six")),
    ("i want tree cokes", ParsedLine("coke", 3), ("tree", "three")),
    ("sexy medium pizzas", ParsedLine("pizza", 6, "medium"), ("sexy", "six")),
    ("six large coaks", ParsedLine("coke", 6), ("coaks", "cokes")),  # only vowels differ
])
def test_probe_errors_are_repaired(parser: OrderParser, heard: str, line: ParsedLine,
                                   repaired: tuple[str, str]) -> None:
    r = parser.parse(heard)
    assert r.lines == [line]
    assert repaired in r.repaired


def test_lost_plural_after_a_quantity_keeps_the_quantity(parser: OrderParser) -> None:
    r = parser.parse("two pepperoni pizza and three coke")
    assert r.lines == [ParsedLine("pizza", 2, "medium", (("add", "pepperoni"),)),
                       ParsedLine("coke", 3)]
    assert r.repaired == []  # a plural the lexicon already knows is no repair


@pytest.mark.parametrize("text", [
    "a pizza with bananas",        # far from every menu word
    "a large pizza with sushi",
    "a pizza with ham please thanks",
])
def test_no_false_matches(parser: OrderParser, text: str) -> None:
    r = parser.parse(text)
    assert r.repaired == []
    assert all(m[1] in ("ham",) for li in r.lines for m in li.modifiers)


def test_number_sound_alikes_only_in_a_quantity_position(parser: OrderParser) -> None:
    assert parser.parse("what about sex").repaired == []  # no menu phrase follows
    r = parser.parse("two sex pizzas")  # a number already stands there
    assert ("sex", "six") not in r.repaired and r.lines[0].quantity == 2
    r = parser.parse("i need it for large pizzas")  # 'for' after 'it' is plain English
    assert r.repaired == [] and r.lines[0].quantity == 1
    r = parser.parse("get me to medium pizza")  # 'to' was 'a' as often as 'two': left alone
    assert r.repaired == [] and r.lines[0].quantity == 1
    r = parser.parse("a medium pizza but i do not want any bacon")  # 'any' is never 'one'
    assert r.repaired == [] and r.lines == [ParsedLine("pizza", 1, "medium", (("remove", "bacon"),))]


def test_exact_matches_win() -> None:
    six, salad = Tag(NUMBER, "6", "six"), Tag("item", "sexy_salad", "sexy salad")
    numbers = SoundAlike([("six", six), ("sixty", Tag(NUMBER, "60", "sixty"))], set(), min_chars=3)
    assert numbers.match(["sex"], [True]) == (six, 1)
    assert numbers.match(["six"], [True]) == (six, 1)  # distance 0 beats any neighbour
    items = SoundAlike([("sexy salad", salad)], set())
    assert items.match(["banana"], [True]) is None


def test_a_tie_stays_unmatched() -> None:
    a, b = Tag("item", "pina", "pina"), Tag("item", "pino", "pino")
    assert SoundAlike([("pina", a), ("pino", b)], set()).match(["pinu"], [True]) is None
    assert SoundAlike([("pina", a), ("pino", b)], set()).match(["pina"], [True]) == (a, 1)


@pytest.mark.parametrize("heard, quantity", [
    ("get me to medium pizzas", 2),        # before a plural: the number
    ("and for large cokes", 4),
    ("i want to large pepperoni pizzas", 2),
    ("get me do medium pizzas with ham", 2),
    ("i want to order a pizza", 1),        # 'to' before a verb stays 'to'
    ("i need it for large pizzas", 1),     # after 'it' it is the preposition
])
def test_number_homophones_before_a_plural(parser: OrderParser, heard: str, quantity: int) -> None:
    r = parser.parse(heard)
    assert [li.quantity for li in r.lines] == [quantity]


def test_voicing_is_blurred_by_the_phone_line(parser: OrderParser) -> None:
    r = parser.parse("six large cogs")
    assert r.lines == [ParsedLine("coke", 6)] and ("cogs", "cokes") in r.repaired
    assert parser.parse("six large kids").lines == []  # other consonants: no match


def test_a_drink_heard_with_toppings_was_a_dish_that_sounds_the_same() -> None:
    from benchmarks.nlu import DEFAULT_CATALOGS
    from blueprints.catalog_import import pizza_menu

    menu = pizza_menu(DEFAULT_CATALOGS.resolve())
    p = OrderParser(menu)
    r = p.parse("i want to large pepsis along with onions")
    assert [(li.item_id, li.quantity, li.size) for li in r.lines] == [("pizza", 2, "large")]
    assert r.lines[0].modifiers == (("add", "onions"),) and ("pepsis", "pizza") in r.repaired
    r = p.parse("two pepsis and a large pizza with ham")  # toppings belong to the pizza
    assert [li.item_id for li in r.lines] == ["pepsi", "pizza"] and r.repaired == []
    assert OrderParser(menu, sound_alike=False).parse(
        "two pepsis with onions").lines[0].item_id == "pepsi"  # a repair: off with the others
