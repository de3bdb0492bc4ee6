"""A pizza tenant overlay built from a PIZZA-style catalogs directory (`surface<TAB>kind(ARGS)`).

This is how the NLU benchmark gets its menu: at run time, from wherever the catalogs live.
Their licence forbids copying them into the repository, so nothing here is ever written out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from blueprints.menu import Menu

_ENTITY = re.compile(r"^(\w+)\((.*)\)$")
# The catalogs name no dishes, only their parts; these are the two kinds of line they make.
_PIZZA = {"id": "pizza", "name": "pizza", "plural": "pizzas", "category": "pizza",
          "synonyms": ["pizza", "pizzas", "pie", "pies", "pizza pie"]}
_DRINK_CATEGORY = "drink"


class CatalogError(ValueError):
    """A catalog line that is not `surface<TAB>kind(args)`: names the file and line."""


def read_catalog(path: Path) -> list[tuple[str, str, list[str]]]:
    """(surface form, entity kind, arguments) for each non-empty line of one catalog file."""
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        surface, sep, entity = raw.partition("\t")
        m = _ENTITY.match(entity.strip())
        if not sep or not m or not surface.strip():
            raise CatalogError(f"{path}:{n}: expected 'surface<TAB>kind(args)', got {raw!r}")
        out.append((surface.strip(), m.group(1), [a.strip() for a in m.group(2).split(",")]))
    return out


def _grouped(path: Path) -> dict[tuple[str, ...], list[str]]:
    """Surface forms per entity (its argument tuple), in file order.

    A form listed twice for different entities keeps the later one, as the catalogs' own
    reader does (it loads them into a dict), so our reading matches the dataset's.
    """
    owner: dict[str, tuple[tuple[str, ...], str]] = {}
    if not path.exists():
        return {}
    for surface, _, args in read_catalog(path):
        key = " ".join(surface.lower().replace("-", " ").split())
        owner.pop(key, None)  # re-insert so a later listing also takes the later position
        owner[key] = (tuple(args), surface)
    groups: dict[tuple[str, ...], list[str]] = {}
    for entity, surface in owner.values():
        groups.setdefault(entity, []).append(surface)
    return groups


def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", "_".join(parts).lower()).strip("_")


def _terms(path: Path) -> dict[str, dict[str, Any]]:
    """Catalog entities keyed by slug of their code, as menu-term dicts."""
    return {_slug(code): {"name": forms[0], "synonyms": forms, "code": code}
            for (code, *_), forms in _grouped(path).items()}


def _plural(name: str, forms: list[str]) -> str:
    return next((f for f in forms if f.startswith(name) and f[len(name):] in ("s", "es")),
                name + "s")


def _volumes(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for (amount, unit), forms in _grouped(path).items():
        out[_slug(amount, unit)] = {"name": forms[0], "synonyms": forms, "amount": float(amount),
                                    "unit": unit.upper()}
    return out


def pizza_overlay(catalogs: Path, tenant: str = "pizza_catalog") -> dict[str, Any]:
    """A tenant overlay dict (same schema as a tenant YAML) whose menu is the catalogs' vocabulary."""
    sizes = _terms(catalogs / "size.txt")
    styles = _terms(catalogs / "style.txt")
    options = _terms(catalogs / "topping.txt")
    containers = _terms(catalogs / "container.txt")
    for c in containers.values():
        c["plural"] = _plural(c["name"], c["synonyms"])
    volumes = _volumes(catalogs / "drink_volume.txt")
    priced_sizes = {s: 0 for s in sizes}
    items: list[dict[str, Any]] = [{**_PIZZA, "sizes": priced_sizes, "options": list(options),
                                    "styles": list(styles)}]
    for (code, *_), forms in _grouped(catalogs / "drinks.txt").items():
        items.append({"id": _slug(code), "name": forms[0], "plural": _plural(forms[0], forms),
                      "category": _DRINK_CATEGORY, "synonyms": forms, "code": code,
                      "sizes": priced_sizes, "containers": list(containers),
                      "volumes": list(volumes)})
    qualifiers: dict[str, list[str]] = {}
    for (q, *_), forms in _grouped(catalogs / "quant_qualifier.txt").items():
        qualifiers.setdefault(q.lower(), []).extend(forms)
    numbers = {f: int(n) for (n, *_), forms in _grouped(catalogs / "number.txt").items()
               for f in forms}
    menu = {"items": items, "options": options, "sizes": sizes, "styles": styles,
            "containers": containers, "volumes": volumes, "qualifiers": qualifiers,
            "numbers": numbers, "default_item": "pizza",
            "menu_hint": f"pizzas with {len(options)} toppings and {len(items) - 1} drinks"}
    return {"tenant": tenant, "restaurant": "Catalog Pizza", "currency": "USD",
            "ready_minutes": 20, "menu": menu}


def pizza_menu(catalogs: Path) -> Menu:
    """The validated menu of `pizza_overlay`."""
    return Menu.model_validate(pizza_overlay(catalogs)["menu"])
