"""The composed blueprint: what a session is allowed to do, as one validated document."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Intent(_Strict):
    phrases: list[str] = Field(default_factory=list)
    slots: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)


class Repair(_Strict):
    max_attempts: int = Field(ge=1, le=10)
    on_exhausted: str = "handoff"


class Confirmation(_Strict):
    read_back: str = "required"
    tool: str


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


class RuntimePolicy(_Strict):
    policy: str
    barge_in_sensitivity: float = Field(ge=0, le=1)
    max_turns: int = Field(ge=1)
    latency_budget_ms: int = Field(ge=100)
    endpoint_silence_ms: int = Field(ge=100, le=3000)


class Blueprint(_Strict):
    """Sector + tenant overlay + runtime policy, composed; `content_hash` identifies it."""

    sector: str
    version: str
    tenant: str
    restaurant: str
    currency: str = Field(min_length=3, max_length=3)
    ready_minutes: int = Field(ge=1)
    intents: dict[str, Intent]
    confirmation: Confirmation
    repair: Repair
    tools_allowed: list[str]
    prompts: dict[str, str]
    menu: Menu
    asr_hints: str = ""
    policy: RuntimePolicy
    content_hash: str = ""

    def prompt(self, key: str, **values: object) -> str:
        """A prompt of the blueprint with {placeholders} filled; KeyError if it has none."""
        return self.prompts[key].format(restaurant=self.restaurant, **values)
