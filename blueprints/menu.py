"""A tenant's menu as its overlay declares it: items, sizes, styles, options, containers, volumes.

Menu content is data in the overlay, never code; the order parser, read-back and the EXR
benchmark writer are built from this model, so a new menu needs no code change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SLUG = r"^[a-z0-9_]+$"
CODE = r"^[A-Z0-9_]+$"
Qualifier = Literal["extra", "light"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MenuTerm(_Strict):
    """Something a caller can name: its display name, the phrases that mean it, a stable code."""

    name: str = Field(min_length=1)
    synonyms: list[str] = Field(default_factory=list)
    code: str | None = Field(default=None, pattern=CODE, description="e.g. THIN_CRUST, for EXR")

    def phrases(self) -> list[str]:
        """Every phrase that means this term, display name first."""
        return list(dict.fromkeys([self.name, *self.synonyms]))


class MenuOption(MenuTerm):
    """A topping or other add-on; callers may ask for it extra, light or not at all."""

    synonyms: list[str] = Field(min_length=1)
    price: int = Field(default=0, ge=0, description="surcharge in cents")


class MenuSize(MenuTerm):
    """A size word shared by items ("large"); each item prices the sizes it comes in."""


class MenuStyle(MenuTerm):
    """A way an item is made ("thin crust", "vegetarian"); callers may also refuse one."""

    price: int = Field(default=0, ge=0, description="surcharge in cents")


class MenuContainer(MenuTerm):
    """What a drink comes in ("can", "bottle")."""

    plural: str | None = None


class MenuVolume(MenuTerm):
    """A drink volume ("2 liter"): amount and unit say it exactly, whatever the wording."""

    amount: float = Field(gt=0)
    unit: str = Field(pattern=CODE, description="e.g. LITER, ML, OZ, FLOZ")


class MenuItem(_Strict):
    """A sellable item; price either per size (cents) or flat."""

    id: str = Field(pattern=SLUG)
    name: str
    plural: str
    category: str
    synonyms: list[str] = Field(min_length=1)
    code: str | None = Field(default=None, pattern=CODE)
    sizes: dict[str, int] = Field(default_factory=dict)
    default_size: str | None = None
    price: int | None = Field(default=None, ge=0)
    options: list[str] = Field(default_factory=list)
    styles: list[str] = Field(default_factory=list)
    containers: list[str] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)
    max_quantity: int | None = Field(default=None, ge=1, le=99)

    @model_validator(mode="after")
    def _priced(self) -> MenuItem:
        if not self.sizes and self.price is None:
            raise ValueError(f"item {self.id!r} needs either sizes or price")
        if self.default_size and self.default_size not in self.sizes:
            raise ValueError(f"item {self.id!r}: default_size {self.default_size!r} not in sizes")
        return self


class Menu(_Strict):
    """The whole menu; every id an item refers to must be declared here."""

    items: list[MenuItem] = Field(min_length=1)
    options: dict[str, MenuOption] = Field(default_factory=dict)
    sizes: dict[str, MenuSize] = Field(
        default_factory=dict, description="size words; if empty, each size id is its own word")
    styles: dict[str, MenuStyle] = Field(default_factory=dict)
    containers: dict[str, MenuContainer] = Field(default_factory=dict)
    volumes: dict[str, MenuVolume] = Field(default_factory=dict)
    qualifiers: dict[Qualifier, list[str]] = Field(
        default_factory=dict, description="extra wordings of 'extra'/'light' beyond plain English")
    numbers: dict[str, int] = Field(
        default_factory=dict, description="extra wordings of quantities beyond plain English")
    default_item: str | None = Field(
        default=None, description="item meant when a caller names only toppings or a size")
    max_quantity: int = Field(default=20, ge=1, le=99, description="most in one order")
    menu_hint: str

    @model_validator(mode="after")
    def _references_known(self) -> Menu:
        ids = [i.id for i in self.items]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate item ids {dup}")
        for item in self.items:
            for field, declared in (("options", self.options), ("styles", self.styles),
                                    ("containers", self.containers), ("volumes", self.volumes)):
                unknown = [o for o in getattr(item, field) if o not in declared]
                if unknown:
                    raise ValueError(f"item {item.id!r} lists unknown {field} {unknown}")
            if self.sizes:
                unknown = [s for s in item.sizes if s not in self.sizes]
                if unknown:
                    raise ValueError(f"item {item.id!r} lists unknown sizes {unknown}")
        if self.default_item is not None and self.default_item not in ids:
            raise ValueError(f"default_item {self.default_item!r} is not an item id")
        _check_phrases_unique(self)
        return self

    def item(self, item_id: str) -> MenuItem:
        """The item with this id; KeyError if there is none."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def size(self, size_id: str) -> MenuSize:
        """The declared size, or the size id itself as its only word (menus without `sizes`)."""
        return self.sizes.get(size_id) or MenuSize(name=size_id.replace("_", " "))

    def limit_for(self, item_id: str) -> int:
        """Most units of this item one line may hold (item override, else the menu's)."""
        return self.item(item_id).max_quantity or self.max_quantity

    def build_item(self) -> str | None:
        """The item a bare 'two large with ham' means: `default_item`, else the first with options."""
        if self.default_item:
            return self.default_item
        return next((i.id for i in self.items if i.options), None)


def _check_phrases_unique(menu: Menu) -> None:
    """One phrase must not mean two things of the same kind, or the parser would have to guess."""
    kinds: dict[str, dict[str, MenuTerm]] = {
        "option": dict(menu.options), "size": dict(menu.sizes), "style": dict(menu.styles),
        "container": dict(menu.containers), "volume": dict(menu.volumes)}
    items = {i.id: MenuTerm(name=i.name, synonyms=[i.plural, *i.synonyms]) for i in menu.items}
    for kind, terms in {"item": items, **kinds}.items():
        seen: dict[str, str] = {}
        for tid, term in terms.items():
            for phrase in term.phrases():
                key = " ".join(phrase.lower().replace("-", " ").split())
                other = seen.setdefault(key, tid)
                if other != tid:
                    raise ValueError(f"{kind} phrase {phrase!r} means both {other!r} and {tid!r}")
