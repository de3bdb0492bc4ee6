"""The burger shop overlay runs on the same parser as the pizza demo: no code of its own."""

from pathlib import Path

import pytest
import yaml

from appliance.dialog.order_parser import OrderParser, ParsedLine
from appliance.dialog.read_back import describe_order, unit_price
from blueprints.menu import Menu

OVERLAY = Path(__file__).resolve().parents[2] / "blueprints" / "tenants" / "burger_shop.yaml"


@pytest.fixture(scope="module")
def parser() -> OrderParser:
    return OrderParser(Menu.model_validate(yaml.safe_load(OVERLAY.read_text())["menu"]))


@pytest.mark.parametrize("text, lines", [
    ("two double bacon cheeseburgers with no pickles and a large fries",
     [ParsedLine("cheeseburger", 2, "quarter_pound", (("add", "bacon"), ("remove", "pickles")),
                 styles=("double",)),
      ParsedLine("fries", 1, "large")]),
    ("a half pounder with extra cheese and light mayo, hold the onions",
     [ParsedLine("burger", 1, "half_pound",
                 (("extra", "cheese"), ("light", "mayo"), ("remove", "onions")))]),
    ("three chocolate shakes and a small curly fries",
     [ParsedLine("shake", 3, "small", styles=("chocolate",)),
      ParsedLine("fries", 1, "small", styles=("curly",))]),
    ("a burger loaded with jalapenos and just a touch of mustard, and onion rings",
     [ParsedLine("burger", 1, "quarter_pound", (("extra", "jalapenos"), ("light", "mustard"))),
      ParsedLine("onion_rings", 1)]),
    ("can i get a large cola in a can and a well done burger without tomato or lettuce",
     [ParsedLine("cola", 1, "large", container="can"),
      ParsedLine("burger", 1, "quarter_pound", (("remove", "tomato"), ("remove", "lettuce")),
                 styles=("well_done",))]),
    ("two with bacon and a cheeseburger with two patties",
     [ParsedLine("burger", 2, "quarter_pound", (("add", "bacon"),)),
      ParsedLine("cheeseburger", 1, "quarter_pound", styles=("double",))]),
])
def test_burger_orders(parser: OrderParser, text: str, lines: list[ParsedLine]) -> None:
    result = parser.parse(text)
    assert result.lines == lines
    assert result.unknown == [] and result.over_limit == []


def test_off_menu_item_is_unknown(parser: OrderParser) -> None:
    result = parser.parse("a burger and a lobster roll please")
    assert result.lines == [ParsedLine("burger", 1, "quarter_pound")]
    assert result.unknown == ["lobster roll"]


def test_item_limit_from_the_overlay(parser: OrderParser) -> None:
    result = parser.parse("twelve burgers and twelve lemonades")
    assert result.over_limit == [ParsedLine("burger", 12, "quarter_pound")]
    assert result.lines == [ParsedLine("lemonade", 12, "medium")]


def test_wording_and_price_come_from_the_overlay(parser: OrderParser) -> None:
    [line] = parser.parse("a double cheeseburger with avocado").lines
    assert describe_order([line], parser.menu) == (
        "one quarter pound double cheeseburger with avocado")
    assert unit_price(line, parser.menu) == 899 + 250 + 175


def test_overlay_composes_with_the_order_sector() -> None:
    from blueprints.engine import compose_builtin

    assert compose_builtin("restaurant_orders", "burger_shop").menu is not None


def _menu_with(**changes: object) -> dict:
    menu = yaml.safe_load(OVERLAY.read_text())["menu"]
    menu.update(changes)
    return menu


def test_menu_errors_say_what_is_wrong() -> None:
    menu = _menu_with()
    menu["items"][0]["styles"].append("smoked")
    with pytest.raises(ValueError, match="item 'burger' lists unknown styles \\['smoked'\\]"):
        Menu.model_validate(menu)
    menu = _menu_with()
    menu["options"]["mayo"]["synonyms"].append("ketchup")
    with pytest.raises(ValueError, match="option phrase 'ketchup' means both"):
        Menu.model_validate(menu)
    with pytest.raises(ValueError, match="default_item 'pizza' is not an item id"):
        Menu.model_validate(_menu_with(default_item="pizza"))
