"""The composed blueprint: what a session is allowed to do, as one validated document.

A sector declares intents, the slots each intent needs (typed, prompted, validated,
repaired), which tools may run and when the caller must confirm or is escalated; the
tenant overlay brings content (name, menu, hours); the runtime policy session limits.
Cross-references between these parts are checked by `blueprints.engine`, which knows
which file each part came from.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from blueprints.menu import Menu

SlotType = Literal["order_lines", "party_size", "date", "time", "name", "phone", "free_text"]
IntentRole = Literal["task", "confirm", "deny", "done", "escalate", "change", "remove"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PromptKey = Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeRule(_Strict):
    """A number slot must lie within [min, max]; `say` is spoken when it does not."""

    check: Literal["range"]
    min: int | None = None
    max: int | None = None
    say: PromptKey


class NotPastRule(_Strict):
    """A date (or a time on `date_slot`'s day) must not lie before the call's `now`."""

    check: Literal["not_past"]
    date_slot: str | None = None
    say: PromptKey


class ToolRule(_Strict):
    """Run `tool` with inputs taken from slots; the boolean output field `expect` must be true."""

    check: Literal["tool"]
    tool: str
    args: dict[str, str] = Field(description="tool input field -> slot name")
    expect: str
    say: PromptKey


Rule = Annotated[RangeRule | NotPastRule | ToolRule, Field(discriminator="check")]


class Repair(_Strict):
    """How often a slot may fail before escalation, and what to say when nothing was understood."""

    max_attempts: int = Field(ge=1, le=10)
    reprompt: PromptKey
    low_confidence: PromptKey | None = Field(
        default=None, description="said instead of reprompt when the recogniser was unsure")


class SlotRepair(_Strict):
    """Per-slot repair; unset fields fall back to the blueprint's `repair`."""

    max_attempts: int | None = Field(default=None, ge=1, le=10)
    reprompt: PromptKey | None = None
    unknown: PromptKey | None = Field(
        default=None, description="spoken when the caller named something that does not exist")


class Slot(_Strict):
    """One piece of required information: its type, how to ask, validate and repair it.

    A `many` slot (a cart) keeps collecting values through `add_tool` until the caller says
    a `done_intent` phrase.
    """

    type: SlotType
    prompt: PromptKey
    rules: list[Rule] = Field(default_factory=list)
    repair: SlotRepair = SlotRepair()
    many: bool = False
    add_tool: str | None = Field(default=None, description="many slots: called with {cart, lines}")
    done_intent: str | None = None
    added: PromptKey | None = Field(default=None, description="many slots: after values were added")
    noted: PromptKey | None = Field(
        default=None, description="many slots: said before a repair when some values were kept")
    empty: PromptKey | None = Field(default=None, description="many slots: done with nothing")
    heard_as: PromptKey | None = Field(
        default=None, description="many slots: said instead of `added` after a sound-alike repair")
    over_limit: PromptKey | None = Field(
        default=None, description="many slots: refusal of a value over its limit ({thing}, {max})")
    update_tool: str | None = Field(
        default=None, description="many slots: corrections, called with {cart, index, line}")
    remove_tool: str | None = Field(
        default=None, description="many slots: removals, called with {cart, index}")
    changed: PromptKey | None = Field(default=None, description="many slots: after a correction")
    removed: PromptKey | None = Field(default=None, description="many slots: after a removal")
    missing: PromptKey | None = Field(
        default=None, description="many slots: a correction names nothing held ({thing})")

    def reads(self) -> set[str]:
        """Other slots this slot's rules read: a change there means checking this one again."""
        out: set[str] = set()
        for rule in self.rules:
            if isinstance(rule, ToolRule):
                out |= set(rule.args.values())
            elif isinstance(rule, NotPastRule) and rule.date_slot:
                out.add(rule.date_slot)
        return out

    @model_validator(mode="after")
    def _many_is_complete(self) -> Slot:
        if self.many and not (self.add_tool and self.done_intent and self.added):
            raise ValueError("a many slot needs add_tool, done_intent and added")
        if not self.many and (any(self.list_prompts().values()) or self.update_tool or self.remove_tool):
            raise ValueError("heard_as, over_limit, corrections and removals are for many slots")
        if (self.update_tool or self.remove_tool) and not (self.changed and self.removed and self.missing):
            raise ValueError("a slot with update_tool or remove_tool needs changed, removed and missing")
        return self

    def list_prompts(self) -> dict[str, str | None]:
        """The prompts only a many slot uses, by field name."""
        return {"heard_as": self.heard_as, "over_limit": self.over_limit, "changed": self.changed,
                "removed": self.removed, "missing": self.missing}


class Confirmation(_Strict):
    """Read back before submitting; `tool` (optional) renders the read-back from slots."""

    say: PromptKey
    tool: str | None = None
    args: dict[str, str] = Field(default_factory=dict, description="tool input field -> slot name")
    after_deny: PromptKey


class Submit(_Strict):
    """The tool that completes the intent; args name slots or `read_back.<output field>`."""

    tool: str
    args: dict[str, str]
    say: PromptKey


class Intent(_Strict):
    """A task the caller may want (role task) or a control phrase set (confirm, deny, ...)."""

    role: IntentRole = "task"
    phrases: list[str] = Field(default_factory=list)
    slots: list[str] = Field(default_factory=list)
    confirmation: Confirmation | None = None
    submit: Submit | None = None

    @model_validator(mode="after")
    def _task_has_submit(self) -> Intent:
        if self.role == "task" and self.submit is None:
            raise ValueError("a task intent needs submit")
        if self.role != "task" and (self.slots or self.submit or self.confirmation):
            raise ValueError(f"a {self.role} intent only has phrases")
        return self


class Escalation(_Strict):
    """Said and recorded when the engine gives up or the caller asks for a person."""

    say: PromptKey
    tool: str | None = Field(default=None, description="handoff.transfer or callback.schedule")


class OpeningSpan(_Strict):
    opens: dt.time
    closes: dt.time

    @model_validator(mode="after")
    def _ordered(self) -> OpeningSpan:
        if self.closes <= self.opens:
            raise ValueError("closes must be after opens (spans past midnight are not supported)")
        return self


class ReservationPolicy(_Strict):
    """Capacity of the tenant's room: guests (covers) per booking slot."""

    slot_minutes: int = Field(ge=5, le=240)
    covers_per_slot: int = Field(ge=1)


class RuntimePolicy(_Strict):
    policy: str
    barge_in_sensitivity: float = Field(ge=0, le=1)
    max_turns: int = Field(ge=1)
    latency_budget_ms: int = Field(ge=100)
    endpoint_silence_ms: int = Field(ge=100, le=3000)
    vad_aggressiveness: int = Field(
        default=0, ge=0, le=3, description="WebRTC VAD strictness: 0 keeps most sound, 3 strictest")
    min_asr_confidence: float = Field(
        default=0.0, ge=0, le=1, description="transcripts less sure than this are not acted on")
    max_low_confidence_turns: int = Field(
        default=3, ge=1, description="unsure transcripts per call before escalation")


class Blueprint(_Strict):
    """Sector + tenant overlay + runtime policy, composed; `content_hash` identifies it."""

    sector: str
    version: str
    tenant: str
    restaurant: str = Field(description="the business's spoken name, {restaurant} in prompts")
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    ready_minutes: int | None = Field(default=None, ge=1)
    timezone: str = "UTC"
    hours: dict[Weekday, list[OpeningSpan]] | None = None
    reservations: ReservationPolicy | None = None
    facts: dict[str, str | int] = Field(default_factory=dict, description="extra prompt values")
    default_intent: str | None = None
    intents: dict[str, Intent]
    slots: dict[str, Slot] = Field(default_factory=dict)
    repair: Repair
    escalation: Escalation
    tools_allowed: list[str]
    prompts: dict[str, str]
    menu: Menu | None = None
    asr_hints: str = ""
    policy: RuntimePolicy
    content_hash: str = ""

    @model_validator(mode="after")
    def _list_slot_references(self) -> Blueprint:
        """Prompts and tools named by list-slot edits and confidence repair must exist."""
        keys = [("repair.low_confidence", self.repair.low_confidence)]
        for name, slot in self.slots.items():
            keys += [(f"slots.{name}.{f}", k) for f, k in slot.list_prompts().items()]
            for f, tool in (("update_tool", slot.update_tool), ("remove_tool", slot.remove_tool)):
                if tool is not None and tool not in self.tools_allowed:
                    raise ValueError(f"slots.{name}.{f}: {tool} is used here but not listed "
                                     "in tools_allowed")
        for where, key in keys:
            if key is not None and key not in self.prompts:
                raise ValueError(f"{where}: no prompt {key!r} in prompts")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def role(self, role: IntentRole) -> list[str]:
        """Names of the intents with this role, in declared order."""
        return [name for name, i in self.intents.items() if i.role == role]

    def prompt_values(self) -> dict[str, object]:
        """Values every prompt may use: the business name, overlay facts, the menu hint."""
        values: dict[str, object] = {"restaurant": self.restaurant, **self.facts}
        if self.ready_minutes is not None:
            values["ready_minutes"] = self.ready_minutes
        if self.menu is not None:
            values["menu_hint"] = self.menu.menu_hint
        return values

    def prompt(self, key: str, **values: object) -> str:
        """A prompt with {placeholders} filled; KeyError if there is no such prompt.

        A placeholder without a value renders empty rather than failing a live call; the
        engine's reference check keeps placeholders to names that exist.
        """
        return self.prompts[key].format_map(_Blank({**self.prompt_values(), **values}))


class _Blank(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return ""
