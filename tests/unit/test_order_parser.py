import pytest

from appliance.dialog.order_parser import OrderParser, ParsedLine
from appliance.dialog.read_back import describe_order
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
