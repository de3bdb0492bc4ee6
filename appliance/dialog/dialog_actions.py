"""What the conversation engine answers with, and the phases a conversation moves through.

Actions are data: the call session performs them (speaks, runs a tool, transfers, hangs up)
and feeds tool results back; tests snapshot them. A `Say` carries its blueprint prompt key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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
    prompt: str  # blueprint prompt key, for event snapshots ("a+b" when two are joined)


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


def prefixed(first: Say | None, actions: list[Action]) -> list[Action]:
    """`first` said before a single prompt, in one turn (never before an escalation)."""
    head = actions[0] if actions else None
    if first is None or not first.text or not isinstance(head, Say) or len(actions) > 1:
        return actions
    return [Say(f"{first.text} {head.text}", f"{first.prompt}+{head.prompt}")]
