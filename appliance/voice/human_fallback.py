"""When a call goes to a person, and why: one decision for every trigger.

The caller asking for a person (phrase or DTMF key), repeated repair failure, unsure
recognition, the turn limit, a failed tool and a breached latency budget all end in the
same handover path (call_session._hand_over), so they are decided here, with a reason
that staff read on the slip and a trigger the logs and metrics can count.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel


class FallbackTrigger(StrEnum):
    CALLER_ASKED = "caller_asked"
    DTMF = "dtmf"
    REPAIR = "repair"
    LOW_CONFIDENCE = "low_confidence"
    TURN_LIMIT = "turn_limit"
    TOOL_FAILED = "tool_failed"
    LATENCY = "latency"
    OTHER = "other"  # e.g. the desired state's kill switch: calls go to staff unanswered


class FallbackDecision(BaseModel):
    """Hand the call to staff: what triggered it and the reason given to staff."""

    trigger: FallbackTrigger
    reason: str


LATENCY_MARK = "latency budget"

# The dialog engine's escalation reasons (dialog_core/conversation) by trigger.
_DIALOG_REASONS = (
    ("caller asked for a person", FallbackTrigger.CALLER_ASKED),
    ("repeated repair failure", FallbackTrigger.REPAIR),
    ("repeated low speech recognition confidence", FallbackTrigger.LOW_CONFIDENCE),
    ("turn limit reached", FallbackTrigger.TURN_LIMIT),
)


def fallback_decision(*, dialog_reason: str | None = None, dtmf: str | None = None,
                      latency_breach: str | None = None, staff_key: str = "0") -> FallbackDecision | None:
    """The handover to make for whichever trigger fired, or None when nothing calls for one.

    `dialog_reason` is a Handoff's reason from the dialog engine, `dtmf` a key the caller
    pressed, `latency_breach` what LatencyWatch reported."""
    if dtmf is not None and dtmf == staff_key:
        return FallbackDecision(trigger=FallbackTrigger.DTMF,
                                reason=f"caller pressed {staff_key} for staff")
    if latency_breach:
        return FallbackDecision(trigger=FallbackTrigger.LATENCY, reason=latency_breach)
    if dialog_reason:
        if dialog_reason.startswith("caller pressed "):
            return FallbackDecision(trigger=FallbackTrigger.DTMF, reason=dialog_reason)
        for text, trigger in _DIALOG_REASONS:
            if dialog_reason == text:
                return FallbackDecision(trigger=trigger, reason=dialog_reason)
        if " failed: " in dialog_reason:
            return FallbackDecision(trigger=FallbackTrigger.TOOL_FAILED, reason=dialog_reason)
        if LATENCY_MARK in dialog_reason:  # a LatencyWatch reason on its way through the dialog
            return FallbackDecision(trigger=FallbackTrigger.LATENCY, reason=dialog_reason)
        return FallbackDecision(trigger=FallbackTrigger.OTHER, reason=dialog_reason)
    return None


@dataclass
class LatencyWatch:
    """Counts agent turns over the policy's latency budget: two in a row, or one over
    twice the budget, is a breach (the caller is waiting too long to keep going)."""

    budget_ms: int
    in_a_row: int = 2
    hard_factor: float = 2.0
    _over: int = 0

    def observe(self, latency_ms: float) -> str | None:
        """One turn's latency; the breach reason, or None."""
        if latency_ms > self.budget_ms * self.hard_factor:
            self._over = 0
            return (f"turn latency {latency_ms:.0f} ms over {self.hard_factor:g}x the "
                    f"{self.budget_ms} ms {LATENCY_MARK}")
        self._over = self._over + 1 if latency_ms > self.budget_ms else 0
        if self._over >= self.in_a_row:
            self._over = 0
            return f"{self.in_a_row} turns in a row over the {self.budget_ms} ms {LATENCY_MARK}"
        return None
