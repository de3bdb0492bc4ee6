"""Taking values into slots, and the list slot's own turns: add, refuse, correct, remove.

A list slot (`many`) grows through its `add_tool`; what cannot be taken (a thing that does
not exist, more than the limit) is refused by a blueprint prompt and never added; a
correction (heard by the blueprint's change and remove cues, or a value pointed at by
ordinal) goes through `update_tool` or `remove_tool` and is answered with what changed,
then the question of the phase: what else while collecting, the read-back while confirming.
"""

from __future__ import annotations

from typing import Any

from appliance.dialog.dialog_actions import Action, Phase, Say, prefixed
from appliance.dialog.line_edits import LineEdit, LineEditor, NotHeld, OverLimit
from appliance.dialog.read_back import join_words
from appliance.dialog.slot_checks import SlotChecks
from appliance.dialog.slot_values import Heard
from blueprints.model import Intent
from sync.contracts.tools import ToolResult


class ListSlots(SlotChecks):
    """Filling slots from what was heard, and editing list slots that already hold values."""

    def __post_init__(self) -> None:
        super().__post_init__()
        menu = self.blueprint.menu
        self._editor = LineEditor(menu) if menu is not None else None
        self._preface: Say | None = None  # said before the next read-back

    def _take(self, text: str, heard: Heard) -> list[Action]:
        """Set or add every value heard; refuse what cannot be taken; then go on."""
        grew, said = "", dict[str, str]()
        for name, value in heard.found.items():
            slot = self.blueprint.slots[name]
            if not slot.many:
                self._set(name, value)
                continue
            value = self._within_limits(name, value, heard)
            if not value:
                continue
            result = self._run(slot.add_tool or "", {"cart": self.values.get(name, []), "lines": value})
            if not _ok(result):
                return prefixed(_why(result), self._repair(name, self._reprompt(name)))
            self.values[name] = _output(result)["cart"]
            self.closed.discard(name)
            grew, said = name, self._spoken_output(result)
        self.phase = Phase.COLLECTING
        refused = self._refusal(heard)
        if refused is not None:
            slot = self.blueprint.slots[refused[0]]
            if not (grew and slot.noted):
                return refused[1]
            return prefixed(self._say(slot.noted, **said), refused[1])  # keep what was understood
        if grew:
            slot = self.blueprint.slots[grew]
            self.repairs[grew] = 0
            if not self._said(text, name=slot.done_intent):
                if heard.repaired and slot.heard_as:  # say what a sound-alike was taken for
                    understood = join_words(list(dict.fromkeys(heard.repaired)))
                    return [self._say(slot.heard_as, thing=understood, **said)]
                return [self._say(slot.added or slot.prompt, **said)]
            self.closed.add(grew)
        return self._advance()

    def _within_limits(self, name: str, value: Any, heard: Heard) -> Any:
        """The new values the list can take within its limits; a refused one goes to `heard`."""
        if self._editor is None or self.blueprint.slots[name].type != "order_lines":
            return value
        kept, refused = self._editor.within_limits(self.values.get(name, []), value)
        if refused is not None and heard.over_limit is None:
            heard.over_limit = (name, refused.thing, refused.most)
        return kept

    def _refusal(self, heard: Heard) -> tuple[str, list[Action]] | None:
        """(slot, turn) for a thing that does not exist or is over its limit, if one was heard."""
        if heard.unknown is not None:
            name, thing = heard.unknown
            slot = self.blueprint.slots[name]
            return name, self._repair(name, slot.repair.unknown or self._reprompt(name), thing=thing)
        if heard.over_limit is not None:
            name, thing, most = heard.over_limit
            return name, self._over_limit(name, thing, most)
        return None

    def _over_limit(self, name: str, thing: str, most: int) -> list[Action]:
        slot = self.blueprint.slots[name]
        if slot.over_limit is None:
            return self._repair(name, self._reprompt(name))
        return self._failed_attempt(name) or self._then_ask(
            name, self._say(slot.over_limit, thing=thing, max=str(most)))

    def _edit(self, intent: Intent, text: str) -> list[Action] | None:
        """The turn of a correction to a list slot's values, or None if `text` is none."""
        for name in intent.slots:
            slot = self.blueprint.slots[name]
            held = self.values.get(name)
            if not (self._editor and held and slot.type == "order_lines" and slot.update_tool
                    and slot.remove_tool):
                continue
            edit = self._editor.edit(text, held, self._cued(text, "change"), self._cued(text, "remove"))
            if edit is None:
                return None
            if isinstance(edit, OverLimit):
                return self._over_limit(name, edit.thing, edit.most)
            if isinstance(edit, NotHeld):
                return self._failed_attempt(name) or self._then_ask(
                    name, self._say(slot.missing or "", thing=edit.thing))
            return self._apply(name, edit)
        return None

    def _apply(self, name: str, edit: LineEdit) -> list[Action]:
        """Run the update or remove tool, say what changed, and add what was also ordered."""
        slot = self.blueprint.slots[name]
        cart = self.values[name]
        if edit.line is None:
            tool, args, say = slot.remove_tool, {"cart": cart, "index": edit.index}, slot.removed
        else:
            tool, args, say = slot.update_tool, {"cart": cart, "index": edit.index,
                                                 "line": edit.line}, slot.changed
        result = self._run(tool or "", args)
        if not _ok(result):
            return self._failed_attempt(name) or self._then_ask(name, _why(result))
        self.values[name] = _output(result)["cart"]
        self.repairs[name] = 0
        changed = self._say(say or "", **self._spoken_output(result))
        if edit.more:  # "... and add a coke": added as if said alone, which reopens the list
            return prefixed(changed, self._take("", Heard(found={name: list(edit.more)})))
        return self._then_ask(name, changed)

    def _then_ask(self, name: str, first: Say | None) -> list[Action]:
        """`first`, then the phase's question: the read-back again, or what else to add."""
        slot = self.blueprint.slots[name]
        if not self.values.get(name):
            self.closed.discard(name)
            self.phase = Phase.COLLECTING
            return prefixed(first, [self._say(slot.empty or slot.prompt)])
        if self.phase is Phase.CONFIRMING:
            self._preface = first
            return self._confirm(self.blueprint.intents[self.intent or ""])
        return prefixed(first, [self._say(slot.prompt)])


def _ok(result: ToolResult | None) -> bool:
    return result is not None and result.ok and result.result is not None


def _output(result: ToolResult | None) -> dict[str, Any]:
    assert result is not None and result.result is not None
    return result.result


def _why(result: ToolResult | None) -> Say | None:
    """A failed tool's user-safe message, said before the repair."""
    message = result.error.message if result is not None and result.error else ""
    return Say(message, "error") if message else None
