"""The conversation engine: any sector blueprint, run as a pure state machine.

Fed transcripts (with the recogniser's confidence) and tool results with the current time,
it answers with actions (say, call a tool, hand off, hang up). The blueprint says everything
else: which task the caller wants, the slots to collect in order, how each is validated and
repaired, how a list is corrected, the read-back, the submit tool and when to escalate.
Nothing here names a sector. Layers: `dialog_core` (state, saying, repair, tools),
`slot_checks` (rules), `list_slots` (adding, refusing, corrections), this file (the flow).
"""

from __future__ import annotations

from datetime import datetime

from appliance.dialog.dialog_actions import (
    Action,
    CallTool,
    Handoff,
    Hangup,
    Phase,
    Say,
    ToolRunner,
    prefixed,
)
from appliance.dialog.dialog_core import Pending
from appliance.dialog.list_slots import ListSlots
from appliance.dialog.slot_values import Heard
from blueprints.model import Intent
from sync.contracts.tools import ToolResult

__all__ = ["Action", "CallTool", "Conversation", "Handoff", "Hangup", "Phase", "Say", "ToolRunner"]


class Conversation(ListSlots):
    """One call's conversation. `session_tools` runs the blueprint's pure tools inline."""

    def start(self, now: datetime) -> list[Action]:
        return [self._say("greeting")]

    def on_utterance(self, text: str, now: datetime, confidence: float = 1.0) -> list[Action]:
        """React to one final transcript of the caller; an unsure one is asked again, never used."""
        if self.phase not in (Phase.COLLECTING, Phase.CONFIRMING):
            return []
        self._now, self._preface = now, None
        self.turns += 1
        if self.turns > self.blueprint.policy.max_turns:
            return self._escalate("turn limit reached")
        if confidence < self.blueprint.policy.min_asr_confidence:
            return self._unsure()
        if self._said(text, "escalate"):
            return self._escalate("caller asked for a person")
        fresh = self.intent is None
        intent = self._task(text)
        if intent is None:
            return self._repair("", self.blueprint.repair.reprompt)
        edited = self._edit(intent, text)
        if edited is not None:
            return edited
        heard = self._hear(intent, text)
        if heard.found or heard.unknown or heard.over_limit:
            return self._take(text, heard)
        if self.phase is Phase.CONFIRMING:
            return self._answer_read_back(intent, text)
        return self._unanswered(intent, text, fresh)

    def escalate(self, reason: str) -> list[Action]:
        """End the conversation and hand the call to staff for a reason found outside the
        dialog (a turn answered over the latency budget), the same way the dialog does."""
        return self._escalate(reason)

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

    def _unsure(self) -> list[Action]:
        """A transcript below the policy's confidence: a repair turn; too many escalate."""
        self.unsure_turns += 1
        if self.unsure_turns > self.blueprint.policy.max_low_confidence_turns:
            return self._escalate("repeated low speech recognition confidence")
        intent = self.blueprint.intents.get(self.intent or self.blueprint.default_intent or "")
        slot = (self._expected(intent) if intent else None) or ""
        return self._repair(slot, self.blueprint.repair.low_confidence or self._reprompt(slot))

    def _unanswered(self, intent: Intent, text: str, fresh: bool) -> list[Action]:
        """No value heard: a list slot may be done, a task phrase starts, else a repair."""
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

    def _task(self, text: str) -> Intent | None:
        if self.intent is None:
            self.intent = next((n for n in self.blueprint.role("task") if self._said(text, name=n)),
                               self.blueprint.default_intent)
        return self.blueprint.intents[self.intent] if self.intent else None

    def _hear(self, intent: Intent, text: str) -> Heard:
        kinds = {n: str(self.blueprint.slots[n].type) for n in intent.slots}
        return self._reader.hear(kinds, self._expected(intent), text, self._local_now())

    def _expected(self, intent: Intent) -> str | None:
        """The first slot of the intent still missing: the one the caller is answering."""
        for name in intent.slots:
            if name not in self.values or (self.blueprint.slots[name].many and name not in self.closed):
                return name
        return None

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

    def _confirm(self, intent: Intent) -> list[Action]:
        conf = intent.confirmation
        if conf is None:
            return self._submit(intent)
        if conf.tool is None:
            return self._read_back_result(None)
        args = {f: self.values[src] for f, src in conf.args.items()}
        result = self._run(conf.tool, args, Pending("read_back", conf.tool))
        return [CallTool(self._call(conf.tool, args))] if result is None else self._read_back_result(result)

    def _read_back_result(self, result: ToolResult | None) -> list[Action]:
        conf = self.blueprint.intents[self.intent or ""].confirmation
        assert conf is not None
        if result is not None and (not result.ok or result.result is None):
            return self._tool_failed(result)
        self.read_back = result.result or {} if result else {}
        self.phase = Phase.CONFIRMING
        first, self._preface = self._preface, None  # what a correction changed, said first
        return prefixed(first, [self._say(conf.say, **self._spoken_output(result))])

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
        result = self._run(tool, args, Pending("submit", tool))
        return [CallTool(self._call(tool, args))] if result is None else self._submitted(result)

    def _submitted(self, result: ToolResult) -> list[Action]:
        submit = self.blueprint.intents[self.intent or ""].submit
        assert submit is not None
        if not result.ok or result.result is None:
            return self._tool_failed(result)
        self.phase = Phase.DONE
        return [self._say(submit.say, **self._spoken_output(result)),
                Hangup(f"{self.intent} completed")]
