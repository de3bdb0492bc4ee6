from pathlib import Path

import pytest

from appliance.dialog.order_parser import OrderParser
from benchmarks.exr import read_exr, same_tree, to_exr
from blueprints.catalog_import import CatalogError, pizza_menu, pizza_overlay, read_catalog

# Catalog lines written for this test in the PIZZA catalogs' format (surface TAB kind(args)).
CATALOGS = {
    "topping.txt": "goat cheese\ttopping(GOAT_CHEESE)\nfig\ttopping(FIGS)\nfigs\ttopping(FIGS)\n",
    "style.txt": "square cut\tstyle(SQUARE_CUT)\nsquare\tstyle(SQUARE_CUT)\n",
    "size.txt": "tiny\tsize(TINY)\nhuge\tsize(HUGE)\nfamily size\tsize(FAMILY_SIZE)\n",
    "drinks.txt": "root beer\tdrinkType(ROOT_BEER)\nroot beers\tdrinkType(ROOT_BEER)\n",
    "container.txt": "jug\tcontainerType(JUG)\njugs\tcontainerType(JUG)\n",
    "drink_volume.txt": "1 quart\tvolume(1,QUART)\n\none quart\tvolume(1, QUART)\n"
                        "half a quart\tvolume(1,QUART)\nhalf a quart\tvolume(0.5,QUART)\n",
    "number.txt": "a\tnumber(1)\na pair of\tnumber(2)\n",
    "quant_qualifier.txt": "piles of\tquantity(EXTRA)\na smidge of\tquantity(LIGHT)\n",
}


@pytest.fixture
def catalogs(tmp_path: Path) -> Path:
    for name, text in CATALOGS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_overlay_has_one_pizza_and_one_item_per_drink(catalogs: Path) -> None:
    menu = pizza_overlay(catalogs)["menu"]
    assert [i["id"] for i in menu["items"]] == ["pizza", "root_beer"]
    assert menu["options"]["figs"] == {"name": "fig", "synonyms": ["fig", "figs"], "code": "FIGS"}
    assert menu["qualifiers"] == {"extra": ["piles of"], "light": ["a smidge of"]}
    assert menu["numbers"]["a pair of"] == 2


def test_a_form_listed_twice_keeps_the_later_entity(catalogs: Path) -> None:
    volumes = pizza_menu(catalogs).volumes
    assert volumes["1_quart"].synonyms == ["1 quart", "one quart"]
    assert volumes["0_5_quart"].synonyms == ["half a quart"] and volumes["0_5_quart"].amount == 0.5


def test_parsing_with_the_imported_menu(catalogs: Path) -> None:
    menu = pizza_menu(catalogs)
    result = OrderParser(menu).parse(
        "a pair of huge square pizzas with piles of goat cheese and no figs and three family "
        "root beers in jugs")
    expected = ("(ORDER (PIZZAORDER (NUMBER 2 ) (SIZE HUGE ) (STYLE SQUARE_CUT ) (COMPLEX_TOPPING"
                " (QUANTITY EXTRA ) (TOPPING GOAT_CHEESE ) ) (NOT (TOPPING FIGS ) ) )"
                " (DRINKORDER (NUMBER 3 ) (SIZE FAMILY_SIZE ) (DRINKTYPE ROOT_BEER )"
                " (CONTAINERTYPE JUG ) ) )")
    assert same_tree(read_exr(to_exr(result, menu)), read_exr(expected)), to_exr(result, menu)


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "topping.txt"
    bad.write_text("ham\ttopping(HAM)\nolives topping(OLIVES)\n")
    with pytest.raises(CatalogError, match=r"topping.txt:2:"):
        read_catalog(bad)
