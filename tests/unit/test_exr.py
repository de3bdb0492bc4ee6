import pytest

from appliance.dialog.order_parser import OrderParser
from benchmarks.exr import ExrError, Node, read_exr, same_tree, to_exr
from blueprints.menu import Menu

# A tiny menu written for these tests: one pizza, one drink, a few words each.
MENU = Menu.model_validate({
    "items": [
        {"id": "pizza", "name": "pizza", "plural": "pizzas", "category": "pizza",
         "synonyms": ["pizza", "pie"], "sizes": {"small": 0, "large": 0},
         "options": ["ham", "onions", "cheese"], "styles": ["thin"]},
        {"id": "lemon_soda", "name": "lemon soda", "plural": "lemon sodas", "category": "drink",
         "synonyms": ["lemon soda"], "code": "LEMON_SODA", "sizes": {"small": 0, "large": 0},
         "containers": ["can"], "volumes": ["one_liter"]},
    ],
    "options": {"ham": {"name": "ham", "synonyms": ["ham"], "code": "HAM"},
                "onions": {"name": "onions", "synonyms": ["onion"], "code": "ONIONS"},
                "cheese": {"name": "cheese", "synonyms": ["cheese"], "code": "CHEESE"}},
    "sizes": {"small": {"name": "small", "code": "SMALL"},
              "large": {"name": "large", "code": "LARGE"}},
    "styles": {"thin": {"name": "thin crust", "code": "THIN_CRUST"}},
    "containers": {"can": {"name": "can", "synonyms": ["cans"], "code": "CAN"}},
    "volumes": {"one_liter": {"name": "one liter", "amount": 1, "unit": "LITER"}},
    "menu_hint": "pizza and lemon soda",
})


def test_read_and_write_round_trip() -> None:
    text = "(ORDER (PIZZAORDER (NUMBER 2 ) (NOT (TOPPING HAM ) ) ) )"
    tree = read_exr(text)
    assert tree == Node("ORDER", (Node("PIZZAORDER", (
        Node("NUMBER", ("2",)), Node("NOT", (Node("TOPPING", ("HAM",)),)))),))
    assert str(tree) == text


def test_sibling_order_is_ignored_at_every_level() -> None:
    a = read_exr("(ORDER (PIZZAORDER (NUMBER 1 ) (TOPPING HAM ) (TOPPING ONIONS ) )"
                 " (DRINKORDER (NUMBER 1 ) (DRINKTYPE COLA ) ) )")
    b = read_exr("(ORDER (DRINKORDER (DRINKTYPE COLA ) (NUMBER 1 ) )"
                 " (PIZZAORDER (TOPPING ONIONS ) (NUMBER 1 ) (TOPPING HAM ) ) )")
    assert same_tree(a, b)


def test_children_compare_as_multisets_leaves_included() -> None:
    one = read_exr("(ORDER (PIZZAORDER (NUMBER 1 ) (TOPPING HAM ) ) )")
    two = read_exr("(ORDER (PIZZAORDER (NUMBER 1 ) (TOPPING HAM ) (TOPPING HAM ) ) )")
    assert not same_tree(one, two)
    assert same_tree(read_exr("(VOLUME 1 LITER )"), read_exr("(VOLUME LITER 1 )"))


@pytest.mark.parametrize("bad", ["", "(ORDER", "ORDER )", "(ORDER ) )", "( (X ) )"])
def test_malformed_trees_are_errors(bad: str) -> None:
    with pytest.raises(ExrError):
        read_exr(bad)


def test_parse_to_exr_covers_every_label() -> None:
    result = OrderParser(MENU).parse(
        "two large thin crust pies with extra cheese and ham but no onions, a small pizza "
        "not thin crust without extra ham, and three one liter lemon sodas in cans")
    expected = read_exr(
        "(ORDER (PIZZAORDER (NUMBER 2 ) (SIZE LARGE ) (STYLE THIN_CRUST )"
        " (COMPLEX_TOPPING (QUANTITY EXTRA ) (TOPPING CHEESE ) ) (TOPPING HAM )"
        " (NOT (TOPPING ONIONS ) ) )"
        " (PIZZAORDER (NUMBER 1 ) (SIZE SMALL ) (NOT (STYLE THIN_CRUST ) )"
        " (NOT (COMPLEX_TOPPING (QUANTITY EXTRA ) (TOPPING HAM ) ) ) )"
        " (DRINKORDER (NUMBER 3 ) (DRINKTYPE LEMON_SODA ) (CONTAINERTYPE CAN )"
        " (VOLUME 1 LITER ) ) )")
    assert same_tree(read_exr(to_exr(result, MENU)), expected), to_exr(result, MENU)
