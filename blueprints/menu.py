"""A tenant's menu as its overlay declares it: items, sizes, options, prices.

Menu content is data in the overlay, never code; the order parser and read-back are
built from this model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MenuItem(_Strict):
    """A sellable item; price either per size (cents) or flat."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    plural: str
    category: str
    synonyms: list[str] = Field(min_length=1)
    sizes: dict[str, int] = Field(default_factory=dict)
    default_size: str | None = None
    price: int | None = Field(default=None, ge=0)
    options: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _priced(self) -> MenuItem:
        if not self.sizes and self.price is None:
            raise ValueError(f"item {self.id!r} needs either sizes or price")
        if self.default_size and self.default_size not in self.sizes:
            raise ValueError(f"item {self.id!r}: default_size {self.default_size!r} not in sizes")
        return self


class MenuOption(_Strict):
    name: str
    synonyms: list[str] = Field(min_length=1)


class Menu(_Strict):
    items: list[MenuItem] = Field(min_length=1)
    options: dict[str, MenuOption] = Field(default_factory=dict)
    menu_hint: str

    @model_validator(mode="after")
    def _options_known(self) -> Menu:
        for item in self.items:
            unknown = [o for o in item.options if o not in self.options]
            if unknown:
                raise ValueError(f"item {item.id!r} lists unknown options {unknown}")
        return self
