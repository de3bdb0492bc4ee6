import pytest

from appliance.dialog.order_parser import OrderParser, ParsedLine
from appliance.dialog.read_back import describe_order, to_order_lines
from blueprints.engine import compose_builtin


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(compose_builtin("restaurant_orders", "demo_pizza").menu)


@pytest.mark.parametrize("text, lines", [
    ("Hi, I'd like a large pepperoni pizza and two cokes please.",
     [ParsedLine("pizza", 1, "large", (("add", "pepperoni"),)), ParsedLine("coke", 2)]),
    ("a medium pizza with ham and pineapple, no onions, and a sprite",
     [ParsedLine("pizza", 1, "medium", (("add", "ham"), ("add", "pineapple"), ("remove", "onions"))),
      ParsedLine("sprite", 1)]),
    ("2 small pies with extra cheese", [ParsedLine("pizza", 2, "small", (("extra", "extra_cheese"),))]),
    ("three garlic breads", [ParsedLine("garlic_bread", 3)]),
    ("two large pepperoni and a coke",
     [ParsedLine("pizza", 2, "large", (("add", "pepperoni"),)), ParsedLine("coke", 1)]),
    ("a pizza", [ParsedLine("pizza", 1, "medium")]),
])
def test_orders(parser: OrderParser, text: str, lines: list[ParsedLine]) -> None:
    result = parser.parse(text)
    assert result.lines == lines
    assert result.unknown == []


def test_off_menu_item_is_unknown_not_guessed(parser: OrderParser) -> None:
    result = parser.parse("Can I also get a sushi roll?")
    assert result.lines == []
    assert result.unknown == ["sushi roll"]


def test_negation_stops_at_and(parser: OrderParser) -> None:
    r = parser.parse("a large pizza with no onions and pepperoni")
    assert r.lines[0].modifiers == (("remove", "onions"), ("add", "pepperoni"))


def test_read_back_wording(parser: OrderParser) -> None:
    r = parser.parse("a large pizza with no onions and two cokes")
    assert describe_order(r.lines, parser.menu) == "one large pizza with no onions and two cokes"


def test_possessive_spelling_of_a_plural_is_read_as_plural(parser: OrderParser) -> None:
    r = parser.parse("Hi, I'd like a large pepperoni pizza and two coke's please.")
    assert [li.item_id for li in r.lines] == ["pizza", "coke"] and r.unknown == []
    assert parser.parse("that's all").unknown == []


def _one(parser: OrderParser, text: str) -> ParsedLine:
    result = parser.parse(text)
    assert len(result.lines) == 1 and result.unknown == [], result
    return result.lines[0]


def test_styles_and_refused_styles(parser: OrderParser) -> None:
    assert _one(parser, "a large thin crust pizza with ham").styles == ("thin_crust",)
    line = _one(parser, "a small veggie pie but not the gluten free crust")
    assert line.styles == ("vegetarian",) and line.removed_styles == ("gluten_free",)


def test_negation_runs_over_or_and_stops_at_and(parser: OrderParser) -> None:
    line = _one(parser, "a pizza with ham and no onions or olives and bacon")
    assert line.modifiers == (("add", "ham"), ("remove", "onions"), ("remove", "olives"),
                              ("add", "bacon"))


def test_negation_waits_a_few_words_for_its_object(parser: OrderParser) -> None:
    line = _one(parser, "one pizza with bacon but i do not want any mushrooms on it")
    assert line.modifiers == (("add", "bacon"), ("remove", "mushrooms"))
    assert _one(parser, "no, i think i'd like a pizza with ham").modifiers == (("add", "ham"),)


def test_no_extra_is_declined_not_removed(parser: OrderParser) -> None:
    line = _one(parser, "a pizza with ham but no extra cheese")
    assert line.modifiers == (("add", "ham"),) and line.declined == (("extra", "extra_cheese"),)


def test_light_and_plain_english_quantities(parser: OrderParser) -> None:
    line = _one(parser, "a couple of pizzas with just a little ham and lots of pineapple")
    assert line.quantity == 2
    assert line.modifiers == (("light", "ham"), ("extra", "pineapple"))


def test_drink_containers_and_can_as_a_verb(parser: OrderParser) -> None:
    r = parser.parse("can i get two cans of coke and a sprite in a bottle")
    assert [(li.item_id, li.quantity, li.container) for li in r.lines] == [
        ("coke", 2, "can"), ("sprite", 1, "bottle")]


def test_describing_number_is_not_a_quantity(parser: OrderParser) -> None:
    assert _one(parser, "one large two topping pizza with ham and bacon").quantity == 1


def test_article_before_a_style_adds_to_the_same_pizza(parser: OrderParser) -> None:
    line = _one(parser, "a large pizza with mushrooms and a thin crust but no ham")
    assert line.styles == ("thin_crust",)
    assert line.modifiers == (("add", "mushrooms"), ("remove", "ham"))


def test_second_quantity_or_article_with_topping_starts_a_new_line(parser: OrderParser) -> None:
    r = parser.parse("a small pizza with ham and a pepperoni and two large with bacon")
    assert [(li.quantity, li.size, li.modifiers) for li in r.lines] == [
        (1, "small", (("add", "ham"),)), (1, "medium", (("add", "pepperoni"),)),
        (2, "large", (("add", "bacon"),))]


def test_toppings_before_a_dish_follow_it_past_a_drink(parser: OrderParser) -> None:
    r = parser.parse("a coke and a large ham and pineapple pizza")
    assert r.lines == [ParsedLine("coke", 1),
                       ParsedLine("pizza", 1, "large", (("add", "ham"), ("add", "pineapple")))]


def test_split_heading_and_shared_toppings(parser: OrderParser) -> None:
    r = parser.parse("two large pies, one with ham and the other with bacon")
    assert [(li.quantity, li.size, li.modifiers) for li in r.lines] == [
        (1, "large", (("add", "ham"),)), (1, "large", (("add", "bacon"),))]
    r = parser.parse("a small pizza and a large pizza both with onions")
    assert [li.modifiers for li in r.lines] == [(("add", "onions"),)] * 2


def test_sound_alike_repair_only_when_exact_match_fails(parser: OrderParser) -> None:
    r = parser.parse("a large pizza with pepperoney and mushroms and two spritz")
    assert r.lines[0].modifiers == (("add", "pepperoni"), ("add", "mushrooms"))
    assert r.lines[1] == ParsedLine("sprite", 2)
    assert ("pepperoney", "pepperoni") in r.repaired
    assert parser.parse("a pizza with ham please thanks").repaired == []


def test_over_the_menu_limit_is_reported_not_ordered(parser: OrderParser) -> None:
    r = parser.parse("twenty five pizzas and a coke")
    assert r.lines == [ParsedLine("coke", 1)]
    assert r.over_limit == [ParsedLine("pizza", 25, "medium")]
    assert parser.menu.limit_for("pizza") == 20


def test_unknown_dish_with_a_menu_word_inside(parser: OrderParser) -> None:
    r = parser.parse("a ham sandwich and a coke")
    assert r.unknown == ["ham sandwich"] and r.lines == [ParsedLine("coke", 1)]
    assert parser.parse("no that's all").lines == parser.parse("yes that's right").lines == []


def test_read_back_and_ticket_carry_styles_containers_and_refusals(parser: OrderParser) -> None:
    r = parser.parse("a thin crust pizza with no extra cheese and two cans of coke")
    assert describe_order(r.lines, parser.menu) == (
        "one medium thin crust pizza with no extra cheese and two cokes in cans")
    pizza, coke = to_order_lines(r.lines, parser.menu)
    assert pizza.name == "medium thin crust pizza" and pizza.notes == "no extra cheese"
    assert coke.notes == "in cans" and coke.unit_price_cents == 249
