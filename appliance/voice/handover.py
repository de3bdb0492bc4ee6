"""Warm handover: what a member of staff needs to know before talking to the caller.

Pure: built from the call's recorded turns and the dialog's handover notes, so the same
summary is stored with the transfer or callback follow-up and can be printed or shown
in the setup UI without re-reading the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel

from appliance.store.local_store import Turn

MAX_HEARD = 6  # the last caller lines are the ones staff need; the rest is in call_turns


class HandoverSummary(BaseModel):
    """Who called, why the agent gave up, what it heard and what was in the cart."""

    call_id: str
    caller: str
    reason: str
    intent: str = ""
    heard: list[str] = []
    cart: str = ""
    at: datetime

    def fields(self) -> dict[str, str]:
        """Flat strings for the follow_ups summary column (dict[str, str] by contract)."""
        return {"reason": self.reason, "intent": self.intent, "heard": " | ".join(self.heard),
                "cart": self.cart, "caller": self.caller}

    def lines(self) -> list[str]:
        """The summary as short lines for a kitchen slip or the setup UI."""
        out = [f"CALL BACK / TRANSFER: {self.caller or 'unknown number'}", f"Why: {self.reason}"]
        if self.intent:
            out.append(f"Wanted: {self.intent.replace('_', ' ')}")
        if self.cart:
            out.append(f"So far: {self.cart}")
        out += [f'Heard: "{h}"' for h in self.heard]
        return out


def build_summary(*, call_id: str, caller: str, reason: str, turns: Iterable[Turn],
                  notes: Mapping[str, object], at: datetime) -> HandoverSummary:
    """Summarise a call for staff; `notes` are the dialog's handover notes (intent, slots)."""
    heard = [t.text for t in turns if t.speaker == "caller" and t.text.strip()][-MAX_HEARD:]
    intent = str(notes.get("intent") or "")
    slots = [f"{k}: {v}" for k, v in notes.items() if k not in ("intent", "reason") and v]
    return HandoverSummary(call_id=call_id, caller=caller, reason=reason, intent=intent,
                           heard=heard, cart="; ".join(slots), at=at)
