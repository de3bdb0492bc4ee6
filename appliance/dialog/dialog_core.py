"""State of one conversation and the primitives every part of the engine speaks through.

Saying a prompt, counting a repair and escalating, running a pure tool or handing it to the
session: the slot checks, list-slot edits and the flow in `conversation.py` all build on
these, so repair counting and escalation behave the same wherever a turn goes wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from appliance.dialog.dialog_actions import Action, Handoff, Hangup, Phase, Say, ToolRunner
from appliance.dialog.slot_values import SlotReader, speak
from appliance.dialog.tool_registry import tool_call
from blueprints.model import Blueprint, Intent, IntentRole
from sync.contracts.errors import Correlation
from sync.contracts.tool_schemas import TOOLS
from sync.contracts.tools import ToolCall, ToolResult


@dataclass(frozen=True)
class Pending:
    """What a CallTool the session is running will be used for."""

    purpose: Literal["rule", "read_back", "submit"]
    tool: str
    slot: str = ""
    rule: int = 0


_NEGATED = (" don't ", " dont ", " do not ", " never ")  # a negated cue is no cue


def has_phrase(text: str, phrases: list[str], unless_negated: bool = False) -> bool:
    """A phrase heard as whole words in the lower-cased transcript (optionally not negated)."""
    norm = " " + re.sub(r"\s+", " ", re.sub(r"[^a-z' ]+", " ", text.lower())) + " "
    for p in phrases:
        for m in re.finditer(re.escape(f" {p} "), norm):
            if not (unless_negated and norm[:m.start() + 1].endswith(_NEGATED)):
                return True
    return False


@dataclass
class DialogCore:
    """One call's conversation state. `session_tools` runs the blueprint's pure tools inline."""

    blueprint: Blueprint
    correlation: Correlation
    session_tools: ToolRunner | None = None
    phase: Phase = Phase.COLLECTING
    intent: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)  # many-slots the caller said are complete
    checked: dict[str, int] = field(default_factory=dict)  # rules passed per slot, in order
    repairs: dict[str, int] = field(default_factory=dict)
    turns: int = 0
    unsure_turns: int = 0  # transcripts below the policy's ASR confidence
    read_back: dict[str, Any] = field(default_factory=dict)
    pending: Pending | None = None

    def __post_init__(self) -> None:
        self._now = datetime.min
        self._reader = SlotReader(self.blueprint.menu)

    # -- flow steps the layers above provide --------------------------------------------------

    def _advance(self) -> list[Action]:
        raise NotImplementedError

    def _confirm(self, intent: Intent) -> list[Action]:
        raise NotImplementedError

    # -- primitives ---------------------------------------------------------------------------

    def _said(self, text: str, role: IntentRole | None = None, name: str | None = None) -> bool:
        names = [name] if name else self.blueprint.role(role) if role else []
        return any(has_phrase(text, self.blueprint.intents[n].phrases) for n in names if n)

    def _cued(self, text: str, role: IntentRole) -> bool:
        """A cue of `role` said and not negated: 'forget the X', not 'don't forget the X'."""
        return any(has_phrase(text, self.blueprint.intents[n].phrases, unless_negated=True)
                   for n in self.blueprint.role(role))

    def _local_now(self) -> datetime:
        return self._now.astimezone(self.blueprint.zone()) if self._now.tzinfo else self._now

    def _reprompt(self, slot: str | None) -> str:
        own = self.blueprint.slots[slot].repair.reprompt if slot in self.blueprint.slots else None
        return own or self.blueprint.repair.reprompt

    def _repair(self, slot: str, prompt: str, **values: str) -> list[Action]:
        """Say `prompt`, or escalate once the slot has failed more than its max attempts."""
        return self._failed_attempt(slot) or [self._say(prompt, **values)]

    def _failed_attempt(self, slot: str) -> list[Action]:
        """Count a failed attempt at `slot` ("" for none); the escalation once there are too many."""
        self.repairs[slot] = self.repairs.get(slot, 0) + 1
        own = self.blueprint.slots[slot].repair.max_attempts if slot in self.blueprint.slots else None
        if self.repairs[slot] > (own or self.blueprint.repair.max_attempts):
            return self._escalate("repeated repair failure")
        return []

    def _tool_failed(self, result: ToolResult) -> list[Action]:
        return self._escalate(f"{result.tool} failed: {result.error.code if result.error else '?'}")

    def _escalate(self, reason: str) -> list[Action]:
        self.phase = Phase.DONE
        esc = self.blueprint.escalation
        call = None
        if esc.tool is not None:
            summary = {"intent": self.intent or "", **self._spoken()}
            call = self._call(esc.tool, {"reason": reason, "summary": summary})
        return [self._say(esc.say), Handoff(reason, call), Hangup(reason)]

    def _say(self, key: str, **values: str) -> Say:
        text = self.blueprint.prompt(key, **{**values, **self._spoken()})
        return Say(text[:1].upper() + text[1:], key)

    def _spoken(self) -> dict[str, str]:
        """Filled slots as the agent says them."""
        return {n: speak(self.blueprint.slots[n].type, v) for n, v in self.values.items()}

    @staticmethod
    def _spoken_output(result: ToolResult | None) -> dict[str, str]:
        """A tool's scalar outputs as the agent says them (times and dates in words)."""
        if result is None or result.result is None or result.tool not in TOOLS:
            return {}
        try:
            out: Any = dict(TOOLS[result.tool].output.model_validate(result.result))
        except ValidationError:  # the registry validates; a partial result still speaks
            out = result.result
        return {k: speak("", v) for k, v in out.items()
                if v is not None and not isinstance(v, list | dict | bool)}

    def _call(self, tool: str, args: dict[str, Any]) -> ToolCall:
        return tool_call(tool, args, self.correlation)

    def _run(self, tool: str, args: dict[str, Any], later: Pending | None = None) -> ToolResult | None:
        """Run a pure tool now; for any other remember `later` and return None (emit CallTool)."""
        if self.session_tools is not None and self.session_tools.handles(tool):
            return self.session_tools.run(self._call(tool, args), None, self._now)
        if later is not None:
            self.pending = later
            if later.purpose != "submit":
                self.phase = Phase.CHECKING
        return None
