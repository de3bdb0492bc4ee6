"""PIZZA EXR notation: write a parse as an EXR tree, read EXR strings, compare trees unordered.

EXR is the PIZZA dataset's executable order tree, e.g. `(ORDER (PIZZAORDER (NUMBER 2 ) ... ) )`.
Trees compare as multisets of children at every level, as the dataset's own metric does, so
sibling order never matters.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.dialog.order_parser import ParsedLine, ParseResult
from blueprints.menu import Menu, MenuTerm

DRINK_CATEGORY = "drink"
_QUANTITY = {"extra": "EXTRA", "light": "LIGHT"}


class ExrError(ValueError):
    """Text that is not a well-formed EXR tree."""


@dataclass(frozen=True)
class Node:
    """One EXR node: a label and its children (nodes, or bare leaf tokens such as 'HAM')."""

    label: str
    children: tuple[Node | str, ...] = ()

    def __str__(self) -> str:
        return "(" + " ".join([self.label, *(str(c) for c in self.children)]) + " )"


def read_exr(text: str) -> Node:
    """Parse `(LABEL child ... )` notation; ExrError says where it is malformed."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    node, end = _read(tokens, 0)
    if end != len(tokens):
        raise ExrError(f"trailing tokens after the tree: {' '.join(tokens[end:])!r}")
    return node


def _read(tokens: list[str], i: int) -> tuple[Node, int]:
    if i + 1 >= len(tokens) or tokens[i] != "(" or tokens[i + 1] in "()":
        raise ExrError(f"expected '(LABEL' at token {i}")
    label, i = tokens[i + 1], i + 2
    children: list[Node | str] = []
    while i < len(tokens) and tokens[i] != ")":
        if tokens[i] == "(":
            child, i = _read(tokens, i)
            children.append(child)
        else:
            children.append(tokens[i])
            i += 1
    if i >= len(tokens):
        raise ExrError(f"unclosed ({label}")
    return Node(label, tuple(children)), i + 1


def canonical(tree: Node | str) -> str:
    """A string equal for two trees exactly when they match with sibling order ignored."""
    if isinstance(tree, str):
        return tree
    return "(" + " ".join([tree.label, *sorted(canonical(c) for c in tree.children)]) + " )"


def same_tree(a: Node | str, b: Node | str) -> bool:
    """Unordered exact match: same labels and leaves, children compared as multisets."""
    return canonical(a) == canonical(b)


def order_tree(result: ParseResult, menu: Menu) -> Node:
    """The EXR tree of a parse: one PIZZAORDER or DRINKORDER per line (over-limit lines too)."""
    return Node("ORDER", tuple(_line(li, menu) for li in [*result.lines, *result.over_limit]))


def to_exr(result: ParseResult, menu: Menu) -> str:
    """The EXR string of a parse, in the dataset's spacing: `(ORDER (PIZZAORDER ... ) )`."""
    return str(order_tree(result, menu))


def _code(term: MenuTerm | None, fallback: str) -> str:
    return (term.code if term and term.code else fallback.upper())


def _line(li: ParsedLine, menu: Menu) -> Node:
    item = menu.item(li.item_id)
    kids: list[Node] = [Node("NUMBER", (str(li.quantity),))]
    if li.size:
        kids.append(Node("SIZE", (_code(menu.sizes.get(li.size), li.size),)))
    if item.category == DRINK_CATEGORY:
        kids.append(Node("DRINKTYPE", (item.code or item.id.upper(),)))
        if li.container:
            kids.append(Node("CONTAINERTYPE", (_code(menu.containers.get(li.container),
                                                     li.container),)))
        if li.volume:
            v = menu.volumes[li.volume]
            kids.append(Node("VOLUME", (f"{v.amount:g}", v.unit)))
        return Node("DRINKORDER", tuple(kids))
    kids += [Node("STYLE", (_code(menu.styles.get(s), s),)) for s in li.styles]
    kids += [Node("NOT", (Node("STYLE", (_code(menu.styles.get(s), s),)),))
             for s in li.removed_styles]
    for kind, oid in li.modifiers:
        topping = Node("TOPPING", (_code(menu.options.get(oid), oid),))
        if kind == "remove":
            kids.append(Node("NOT", (topping,)))
        elif kind in _QUANTITY:
            kids.append(Node("COMPLEX_TOPPING", (Node("QUANTITY", (_QUANTITY[kind],)), topping)))
        else:
            kids.append(topping)
    for qual, oid in li.declined:
        topping = Node("TOPPING", (_code(menu.options.get(oid), oid),))
        kids.append(Node("NOT", (Node("COMPLEX_TOPPING", (
            Node("QUANTITY", (_QUANTITY.get(qual, qual.upper()),)), topping)),)))
    return Node("PIZZAORDER", tuple(kids))
