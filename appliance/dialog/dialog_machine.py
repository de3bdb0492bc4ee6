"""The order dialog as a pure state machine driven by the blueprint.

It is fed transcripts and tool results with the current time and answers with actions
(say, call a tool, hand off, hang up). It does no I/O and reads no clock, so a whole
conversation is a unit test.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from appliance.dialog.order_parser import OrderParser, ParsedLine
from appliance.dialog.read_back import describe_order, spoken_money, to_order_lines, unit_price
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation
from sync.contracts.tools import ToolCall, ToolResult


class Phase(enum.Enum):
    ORDERING = "ordering"
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


@dataclass(frozen=True)
class Hangup:
    reason: str


Action = Say | CallTool | Handoff | Hangup


def _has_phrase(text: str, phrases: list[str]) -> bool:
    norm = " " + re.sub(r"[^a-z' ]+", " ", text.lower()) + " "
    norm = re.sub(r"\s+", " ", norm)
    return any(f" {p} " in norm for p in phrases)


@dataclass
class OrderDialog:
    """One call's conversation. Build with the composed blueprint and the call's ids."""

    blueprint: Blueprint
    correlation: Correlation
    phase: Phase = Phase.ORDERING
    cart: list[ParsedLine] = field(default_factory=list)
    repairs: int = 0
    turns: int = 0

    def __post_init__(self) -> None:
        self._parser = OrderParser(self.blueprint.menu)

    def _intent(self, text: str, name: str) -> bool:
        intent = self.blueprint.intents.get(name)
        return bool(intent and _has_phrase(text, intent.phrases))

    def _say(self, key: str, **values: object) -> Say:
        return Say(self.blueprint.prompt(key, **values), key)

    def start(self, now: datetime) -> list[Action]:
        return [self._say("greeting")]

    def on_utterance(self, text: str, now: datetime) -> list[Action]:
        """React to one final transcript of the caller."""
        if self.phase in (Phase.SUBMITTING, Phase.DONE):
            return []
        self.turns += 1
        if self._intent(text, "human"):
            return self._handoff("caller asked for a person")
        if self.turns > self.blueprint.policy.max_turns:
            return self._handoff("turn limit reached")
        parsed = self._parser.parse(text)
        menu = self.blueprint.menu
        if parsed.unknown:
            # Keep what was understood, say so, and refuse only the off-menu part.
            self.cart.extend(parsed.lines)
            self.phase = Phase.ORDERING
            repair = self._repair("unknown_item", thing=parsed.unknown[0], menu_hint=menu.menu_hint)
            if parsed.lines and isinstance(repair[0], Say):
                added = self.blueprint.prompt("noted", items=describe_order(parsed.lines, menu))
                return [Say(f"{added} {repair[0].text}", "noted+unknown_item"), *repair[1:]]
            return repair
        if parsed.lines:
            self.cart.extend(parsed.lines)
            self.repairs = 0
            if self._intent(text, "finish_order"):
                return self._read_back()
            self.phase = Phase.ORDERING
            return [self._say("added", items=_capitalize(describe_order(parsed.lines, menu)))]
        if self.phase is Phase.CONFIRMING:
            if self._intent(text, "deny"):
                self.cart.clear()
                self.phase = Phase.ORDERING
                return [self._say("after_deny")]
            if self._intent(text, "confirm"):
                return self._submit()
        elif self._intent(text, "finish_order") or (self.cart and self._intent(text, "deny")):
            if not self.cart:
                return [self._say("nothing_ordered")]
            return self._read_back()
        return self._repair("not_understood", menu_hint=menu.menu_hint)

    def on_tool_result(self, result: ToolResult, now: datetime) -> list[Action]:
        if result.tool == "order.submit" and self.phase is Phase.SUBMITTING:
            if result.ok and result.result:
                self.phase = Phase.DONE
                return [
                    self._say("confirmed", number=result.result["number"],
                              ready_minutes=self.blueprint.ready_minutes),
                    Hangup("order confirmed"),
                ]
            return self._handoff(f"order.submit failed: {result.error.code if result.error else '?'}")
        return []

    def _read_back(self) -> list[Action]:
        self.phase = Phase.CONFIRMING
        menu = self.blueprint.menu
        total = sum(unit_price(li, menu) * li.quantity for li in self.cart)
        return [self._say("read_back", items=describe_order(self.cart, menu),
                          total=spoken_money(total, self.blueprint.currency))]

    def _submit(self) -> list[Action]:
        self.phase = Phase.SUBMITTING
        lines = to_order_lines(self.cart, self.blueprint.menu)
        call = ToolCall(
            tool="order.submit",
            idempotency_key=f"{self.correlation.call_id}:order.submit",
            correlation=self.correlation,
            args={"lines": [li.model_dump(mode="json") for li in lines]},
        )
        return [CallTool(call)]

    def _repair(self, key: str, **values: object) -> list[Action]:
        self.repairs += 1
        if self.repairs > self.blueprint.repair.max_attempts:
            return self._handoff("repeated repair failure")
        return [self._say(key, **values)]

    def _handoff(self, reason: str) -> list[Action]:
        self.phase = Phase.DONE
        return [self._say("handoff"), Handoff(reason), Hangup(reason)]


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
