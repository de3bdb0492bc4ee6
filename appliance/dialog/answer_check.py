"""Is a (speculative) transcript already a complete answer to what the agent just asked?

The voice session ends the caller's turn after a shorter silence when it is: a yes/no at
the read-back, an order line with its size (where the item has sizes), a name, a number or
a time when that slot is asked, a "that's all" for a list already filled, or a request for
a person. Pure: it reads the conversation's state and never changes it.
"""

from __future__ import annotations

from datetime import datetime

from appliance.dialog.dialog_actions import Phase
from appliance.dialog.dialog_core import DialogCore, has_phrase
from appliance.dialog.slot_values import SlotReader
from blueprints.model import Blueprint


class AnswerCheck:
    """Built once per call (the menu parser is not free); `complete` is the predicate."""

    def __init__(self, blueprint: Blueprint) -> None:
        self.blueprint = blueprint
        self._reader = SlotReader(blueprint.menu)

    def _said(self, text: str, names: list[str]) -> bool:
        return any(has_phrase(text, self.blueprint.intents[n].phrases) for n in names
                   if n in self.blueprint.intents)

    def complete(self, state: DialogCore, text: str, now: datetime) -> bool:
        """True when `text` would settle the current question on its own."""
        bp = self.blueprint
        if not text.strip() or state.phase not in (Phase.COLLECTING, Phase.CONFIRMING):
            return False
        if self._said(text, bp.role("escalate")):
            return True
        if state.phase is Phase.CONFIRMING:
            return self._said(text, bp.role("confirm") + bp.role("deny"))
        intent_name = state.intent or bp.default_intent
        intent = bp.intents.get(intent_name or "")
        if intent is None:
            return False
        expected = next((n for n in intent.slots if n not in state.values or
                         (bp.slots[n].many and n not in state.closed)), None)
        if expected is None:
            return False
        slot = bp.slots[expected]
        kinds = {n: str(bp.slots[n].type) for n in intent.slots}
        heard = self._reader.hear(kinds, expected, text, now)
        if heard.unknown or heard.over_limit:
            return False  # the agent will have to explain: let the caller finish
        if slot.many and state.values.get(expected) and not heard.found.get(expected):
            return self._said(text, [slot.done_intent] if slot.done_intent else []) or self._said(
                text, bp.role("deny"))
        value = heard.found.get(expected)
        if value is None:
            return False
        if str(slot.type) == "order_lines":
            return all(self._sized(line) for line in value)
        return True

    def _sized(self, line: dict[str, object]) -> bool:
        menu = self.blueprint.menu
        if menu is None:
            return True
        item = menu.item(str(line["item_id"]))
        return not item.sizes or line.get("size") is not None or item.default_size is not None
