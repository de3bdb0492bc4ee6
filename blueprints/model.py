"""The composed blueprint: what a session is allowed to do, as one validated document."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from blueprints.menu import Menu


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
