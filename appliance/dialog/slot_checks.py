"""Validation of filled slots by the blueprint's rules: ranges, not-in-the-past, tool checks.

A rule is checked as soon as the slots it reads are filled; a failing rule clears its slot
and says the rule's refusal, which counts as a repair of that slot. Changing a slot checks
again every slot whose rules read it.
"""

from __future__ import annotations

from typing import Any

from appliance.dialog.dialog_actions import Action, CallTool, Phase
from appliance.dialog.dialog_core import DialogCore, Pending
from appliance.dialog.slot_values import in_range, not_past
from blueprints.model import NotPastRule, RangeRule, Rule, ToolRule
from sync.contracts.tools import ToolResult


class SlotChecks(DialogCore):
    """Setting slots and checking them against their rules."""

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

    def _validate(self, name: str, start: int) -> list[Action]:
        """Check rules from `start`: actions if one failed or waits for a tool, else []."""
        rules = self.blueprint.slots[name].rules
        for i in range(start, len(rules)):
            rule = rules[i]
            if isinstance(rule, ToolRule):
                if any(src not in self.values for src in rule.args.values()):
                    return []  # checked once the slots it reads are filled
                args = {f: self.values[src] for f, src in rule.args.items()}
                result = self._run(rule.tool, args, Pending("rule", rule.tool, name, i))
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
