"""The conversation engine: any sector blueprint, run as a pure state machine.

Fed transcripts and tool results with the current time, it answers with actions (say,
call a tool, hand off, hang up). The blueprint says everything else: which task the caller
wants, the slots to collect in order, how each is validated (rules, tools) and repaired,
the read-back, the submit tool and when to escalate. Nothing here names a sector.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from appliance.dialog.slot_values import SlotReader, in_range, not_past, speak
from appliance.dialog.tool_registry import tool_call
from blueprints.model import Blueprint, Intent, IntentRole, NotPastRule, RangeRule, Rule, ToolRule
from sync.contracts.errors import Correlation
from sync.contracts.tool_schemas import TOOLS
from sync.contracts.tools import ToolCall, ToolResult


class Phase(enum.Enum):
    COLLECTING = "collecting"
    CHECKING = "checking"  # waiting for a validation or read-back tool's result
    CONFIRMING = "confirming"
    SUBMITTING = "submitting"
    DONE = "done"


@dataclass(frozen=True)
class Say:
    text: str
    prompt: str  # blueprint prompt key, for event snapshots


@dataclass(frozen=True)
class CallTool:
    call: ToolCall


@dataclass(frozen=True)
class Handoff:
    reason: str
    call: ToolCall | None = None  # the blueprint's escalation tool, with a handover summary


@dataclass(frozen=True)
class Hangup:
    reason: str


Action = Say | CallTool | Handoff | Hangup


class ToolRunner(Protocol):
    """Runs tools in-process; the engine gives it only pure tools (no I/O, no clock)."""

    def handles(self, tool: str) -> bool: ...

    def run(self, call: ToolCall, caller: str | None, now: datetime) -> ToolResult: ...


@dataclass(frozen=True)
class _Pending:
    """What a CallTool the session is running will be used for."""

    purpose: Literal["rule", "read_back", "submit"]
    tool: str
    slot: str = ""
    rule: int = 0


def _has_phrase(text: str, phrases: list[str]) -> bool:
    norm = " " + re.sub(r"\s+", " ", re.sub(r"[^a-z' ]+", " ", text.lower())) + " "
    return any(f" {p} " in norm for p in phrases)


@dataclass
class Conversation:
    """One call's conversation. `session_tools` runs the blueprint's pure tools inline."""

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
    read_back: dict[str, Any] = field(default_factory=dict)
    pending: _Pending | None = None

    def __post_init__(self) -> None:
        self._now = datetime.min
        self._reader = SlotReader(self.blueprint.menu)

    def start(self, now: datetime) -> list[Action]:
        return [self._say("greeting")]

    def on_utterance(self, text: str, now: datetime) -> list[Action]:
        """React to one final transcript of the caller."""
        if self.phase not in (Phase.COLLECTING, Phase.CONFIRMING):
            return []
        self._now = now
        self.turns += 1
        if self._said(text, "escalate"):
            return self._escalate("caller asked for a person")
        if self.turns > self.blueprint.policy.max_turns:
            return self._escalate("turn limit reached")
        fresh = self.intent is None
        intent = self._task(text)
        if intent is None:
            return self._repair("", self.blueprint.repair.reprompt)
        found, unknown = self._extract(intent, text)
        if found or unknown:
            return self._take(intent, text, found, unknown)
        if self.phase is Phase.CONFIRMING:
            return self._answer_read_back(intent, text)
        expected = self._expected(intent) or ""
        slot = self.blueprint.slots.get(expected)
        if slot is not None and slot.many:
            filled = bool(self.values.get(expected))
            if self._said(text, name=slot.done_intent) or (filled and self._said(text, "deny")):
                if not filled:
                    return [self._say(slot.empty or slot.prompt)]
                self.closed.add(expected)
                return self._advance()
        if fresh and slot is not None and self._said(text, name=self.intent):
            return [self._say(slot.prompt)]  # "I'd like to book a table": just start asking
        return self._repair(expected, self._reprompt(expected))

    def on_tool_result(self, result: ToolResult, now: datetime) -> list[Action]:
        """Continue after a tool this engine asked the session to run."""
        p = self.pending
        if p is None or result.tool != p.tool:
            return []
        self._now, self.pending = now, None
        if p.purpose == "rule":
            return self._rule_result(p.slot, p.rule, result)
        if p.purpose == "read_back":
            return self._read_back_result(result)
        return self._submitted(result)

    def _said(self, text: str, role: IntentRole | None = None, name: str | None = None) -> bool:
        names = [name] if name else self.blueprint.role(role) if role else []
        return any(_has_phrase(text, self.blueprint.intents[n].phrases) for n in names if n)

    def _task(self, text: str) -> Intent | None:
        if self.intent is None:
            self.intent = next((n for n in self.blueprint.role("task") if self._said(text, name=n)),
                               self.blueprint.default_intent)
        return self.blueprint.intents[self.intent] if self.intent else None

    def _local_now(self) -> datetime:
        return self._now.astimezone(self.blueprint.zone()) if self._now.tzinfo else self._now

    def _extract(self, intent: Intent, text: str) -> tuple[dict[str, Any], tuple[str, str] | None]:
        kinds = {n: str(self.blueprint.slots[n].type) for n in intent.slots}
        return self._reader.read_all(kinds, self._expected(intent), text, self._local_now())

    def _expected(self, intent: Intent) -> str | None:
        """The first slot of the intent still missing: the one the caller is answering."""
        for name in intent.slots:
            if name not in self.values or (self.blueprint.slots[name].many and name not in self.closed):
                return name
        return None

    def _take(self, intent: Intent, text: str, found: dict[str, Any],
              unknown: tuple[str, str] | None) -> list[Action]:
        grew, said = "", dict[str, str]()
        for name, value in found.items():
            slot = self.blueprint.slots[name]
            if not slot.many:
                self._set(name, value)
                continue
            result = self._run(slot.add_tool or "", {"cart": self.values.get(name, []), "lines": value})
            if result is None or not result.ok or result.result is None:
                why = result.error.message if result is not None and result.error else ""
                return _prefixed(why, "error", self._repair(name, self._reprompt(name)))
            self.values[name] = result.result["cart"]
            self.closed.discard(name)
            grew, said = name, self._spoken_output(result)
        self.phase = Phase.COLLECTING
        if unknown is not None:
            slot = self.blueprint.slots[unknown[0]]
            actions = self._repair(unknown[0], slot.repair.unknown or self._reprompt(unknown[0]),
                                   thing=unknown[1])
            if not (grew and slot.noted):
                return actions
            noted = self._say(slot.noted, **said)  # keep what was understood, and say so
            return _prefixed(noted.text, noted.prompt, actions)
        if grew:
            slot = self.blueprint.slots[grew]
            self.repairs[grew] = 0
            if not self._said(text, name=slot.done_intent):
                return [self._say(slot.added or slot.prompt, **said)]
            self.closed.add(grew)
        return self._advance()

    def _set(self, name: str, value: Any = None) -> None:
        """Set a slot (None clears it); its checks and those of slots reading it start over."""
        if value is None:
            self.values.pop(name, None)
            self.closed.discard(name)
        else:
            self.values[name] = value
        for n, slot in self.blueprint.slots.items():
            if n == name or name in slot.reads():
                self.checked.pop(n, None)

    def _advance(self) -> list[Action]:
        """Validate what is unchecked, then ask for the next missing slot or read back."""
        intent = self.blueprint.intents[self.intent or ""]
        for name in intent.slots:
            slot = self.blueprint.slots[name]
            if name in self.values and not slot.many and self.checked.get(name, -1) < len(slot.rules):
                actions = self._validate(name, self.checked.get(name, 0))
                if actions:
                    return actions
        expected = self._expected(intent)
        if expected:
            self.phase = Phase.COLLECTING
            return [self._say(self.blueprint.slots[expected].prompt)]
        return self._confirm(intent)

    def _validate(self, name: str, start: int) -> list[Action]:
        """Check rules from `start`: actions if one failed or waits for a tool, else []."""
        rules = self.blueprint.slots[name].rules
        for i in range(start, len(rules)):
            rule = rules[i]
            if isinstance(rule, ToolRule):
                if any(src not in self.values for src in rule.args.values()):
                    return []  # checked once the slots it reads are filled
                args = {f: self.values[src] for f, src in rule.args.items()}
                result = self._run(rule.tool, args, _Pending("rule", rule.tool, name, i))
                if result is None:
                    return [CallTool(self._call(rule.tool, args))]
                actions = self._rule_result(name, i, result, resume=False)
                if actions:
                    return actions
            else:
                holds = self._holds(name, rule)
                if holds is None:
                    return []  # checked once the date it needs is known
                if not holds:
                    return self._fail(name, rule, {})
            self.checked[name] = i + 1
        self.checked[name] = len(rules)
        self.repairs[name] = 0
        return []

    def _holds(self, name: str, rule: RangeRule | NotPastRule) -> bool | None:
        value = self.values[name]
        if isinstance(rule, RangeRule):
            return in_range(value, rule.min, rule.max)
        if rule.date_slot is not None and rule.date_slot not in self.values:
            return None
        day = self.values.get(rule.date_slot or "")
        return not_past(value, day, self._local_now())

    def _rule_result(self, name: str, index: int, result: ToolResult,
                     resume: bool = True) -> list[Action]:
        rule = self.blueprint.slots[name].rules[index]
        if not result.ok or result.result is None:
            return self._tool_failed(result)
        if not result.result.get(getattr(rule, "expect", "")):
            return self._fail(name, rule, self._spoken_output(result))
        if not resume:
            return []
        self.checked[name] = index + 1
        return self._validate(name, index + 1) or self._advance()

    def _fail(self, name: str, rule: Rule, values: dict[str, str]) -> list[Action]:
        spoken = {**values, **self._spoken()}  # the refused value, before it is cleared
        if isinstance(rule, RangeRule):
            spoken.update(min=str(rule.min), max=str(rule.max))
        self._set(name)
        self.phase = Phase.COLLECTING
        return self._repair(name, rule.say, **spoken)

    def _confirm(self, intent: Intent) -> list[Action]:
        conf = intent.confirmation
        if conf is None:
            return self._submit(intent)
        if conf.tool is None:
            return self._read_back_result(None)
        args = {f: self.values[src] for f, src in conf.args.items()}
        result = self._run(conf.tool, args, _Pending("read_back", conf.tool))
        return [CallTool(self._call(conf.tool, args))] if result is None else self._read_back_result(result)

    def _read_back_result(self, result: ToolResult | None) -> list[Action]:
        conf = self.blueprint.intents[self.intent or ""].confirmation
        assert conf is not None
        if result is not None and (not result.ok or result.result is None):
            return self._tool_failed(result)
        self.read_back = result.result or {} if result else {}
        self.phase = Phase.CONFIRMING
        return [self._say(conf.say, **self._spoken_output(result))]

    def _answer_read_back(self, intent: Intent, text: str) -> list[Action]:
        assert intent.confirmation is not None
        if self._said(text, "deny"):
            for name in intent.slots:
                self._set(name)
            self.phase = Phase.COLLECTING
            return [self._say(intent.confirmation.after_deny)]
        if self._said(text, "confirm"):
            return self._submit(intent)
        return self._repair("", self.blueprint.repair.reprompt)

    def _submit(self, intent: Intent) -> list[Action]:
        assert intent.submit is not None
        tool = intent.submit.tool
        args = {f: self.read_back.get(src.removeprefix("read_back.")) if src.startswith("read_back.")
                else self.values.get(src) for f, src in intent.submit.args.items()}
        self.phase = Phase.SUBMITTING
        result = self._run(tool, args, _Pending("submit", tool))
        return [CallTool(self._call(tool, args))] if result is None else self._submitted(result)

    def _submitted(self, result: ToolResult) -> list[Action]:
        submit = self.blueprint.intents[self.intent or ""].submit
        assert submit is not None
        if not result.ok or result.result is None:
            return self._tool_failed(result)
        self.phase = Phase.DONE
        return [self._say(submit.say, **self._spoken_output(result)),
                Hangup(f"{self.intent} completed")]

    def _reprompt(self, slot: str | None) -> str:
        own = self.blueprint.slots[slot].repair.reprompt if slot in self.blueprint.slots else None
        return own or self.blueprint.repair.reprompt

    def _repair(self, slot: str, prompt: str, **values: str) -> list[Action]:
        """Say `prompt`, or escalate once the slot has failed more than its max attempts."""
        self.repairs[slot] = self.repairs.get(slot, 0) + 1
        own = self.blueprint.slots[slot].repair.max_attempts if slot in self.blueprint.slots else None
        if self.repairs[slot] > (own or self.blueprint.repair.max_attempts):
            return self._escalate("repeated repair failure")
        return [self._say(prompt, **values)]

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

    def _run(self, tool: str, args: dict[str, Any], later: _Pending | None = None) -> ToolResult | None:
        """Run a pure tool now; for any other remember `later` and return None (emit CallTool)."""
        if self.session_tools is not None and self.session_tools.handles(tool):
            return self.session_tools.run(self._call(tool, args), None, self._now)
        if later is not None:
            self.pending = later
            if later.purpose != "submit":
                self.phase = Phase.CHECKING
        return None


def _prefixed(text: str, key: str, actions: list[Action]) -> list[Action]:
    """`text` said before a repair prompt, in one turn (never before an escalation)."""
    first = actions[0] if actions else None
    if not text or not isinstance(first, Say) or len(actions) > 1:
        return actions
    return [Say(f"{text} {first.text}", f"{key}+{first.prompt}")]
