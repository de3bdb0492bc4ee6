"""Compose sector blueprint + tenant overlay + runtime policy into one hashed Blueprint.

Composition is a deterministic deep merge (overlay wins, mappings merge, lists replace)
followed by validation and a reference check (every prompt, slot and tool a part names must
exist); the hash is SHA-256 over the canonical JSON of the result, so the same three inputs
give the same hash on any machine. Errors name the file, the path inside it and the reason.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from blueprints.model import Blueprint, Intent, IntentRole, Slot, ToolRule
from sync.contracts.tool_schemas import TOOLS


class BlueprintError(ValueError):
    """An invalid blueprint: names the file, the path inside it and the reason."""

    def __init__(self, source: str, path: str, reason: str) -> None:
        super().__init__(f"{source}: {path}: {reason}")
        self.source, self.path, self.reason = source, path, reason


def _builtin(kind: str, name: str) -> Path:
    return Path(str(resources.files("blueprints") / kind / f"{name}.yaml"))


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BlueprintError(str(path), "/", f"cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise BlueprintError(str(path), "/", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BlueprintError(str(path), "/", "top level must be a mapping")
    return data


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key, anything else in `top` replaces `base`."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def compose(sector: Path, overlay: Path, policy: Path) -> Blueprint:
    """Load, merge and validate the three layers; BlueprintError says which file is wrong."""
    layers = [(sector, load_yaml(sector)), (overlay, load_yaml(overlay))]
    doc: dict[str, Any] = {}
    for _, data in layers:
        doc = deep_merge(doc, data)
    doc["policy"] = load_yaml(policy)
    layers.append((policy, {"policy": doc["policy"]}))
    try:
        bp = Blueprint.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _located(layers, doc, tuple(err["loc"]), err["msg"]) from exc
    for loc, reason in check_references(bp):
        raise _located(layers, doc, loc, reason)
    canonical = json.dumps(bp.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return bp.model_copy(update={"content_hash": hashlib.sha256(canonical.encode()).hexdigest()})


def _located(layers: list[tuple[Path, dict[str, Any]]], doc: dict[str, Any],
             loc: tuple[Any, ...], reason: str) -> BlueprintError:
    """The error at `loc`, blamed on the last layer that wrote the deepest part of that path."""
    path = _document_path(doc, loc)
    best, depth = layers[0][0], -1
    for file, data in layers:
        d = _depth(data, path)
        if d >= depth and d > 0:
            best, depth = file, d
    return BlueprintError(str(best), "/" + "/".join(str(p) for p in path), reason)


def _document_path(doc: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` without pydantic's union tags: parts absent from the document, except the last."""
    out: list[Any] = []
    node = doc
    for i, part in enumerate(loc):
        child = _child(node, part)
        if child is _MISSING and i < len(loc) - 1:
            continue
        out.append(part)
        node = child
    return tuple(out)


def _depth(data: Any, path: tuple[Any, ...]) -> int:
    n = 0
    for part in path:
        data = _child(data, part)
        if data is _MISSING:
            break
        n += 1
    return n


_MISSING = object()


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING


def compose_builtin(sector: str, overlay: str, policy: str = "default") -> Blueprint:
    """Compose from the YAML files shipped in this package (or paths, if given paths)."""

    def pick(kind: str, name: str) -> Path:
        p = Path(name)
        return p if p.suffix in (".yaml", ".yml") else _builtin(kind, name)

    return compose(pick("sectors", sector), pick("tenants", overlay), pick("policies", policy))


Problem = tuple[tuple[Any, ...], str]
_ESCALATION_TOOLS = ("handoff.transfer", "callback.schedule")
_ENGINE_VALUES = {"thing", "min", "max"}  # filled by the engine for repair prompts


def check_references(bp: Blueprint) -> Iterator[Problem]:
    """Every name one part of a blueprint uses must exist in another: prompts, slots, tools."""
    yield from _check_tools(bp)
    yield from _check_intents(bp)
    for name, slot in bp.slots.items():
        yield from _check_slot(bp, name, slot)
    yield from _prompt(bp, ("repair", "reprompt"), bp.repair.reprompt)
    yield from _prompt(bp, ("escalation", "say"), bp.escalation.say)
    yield from _prompt(bp, ("prompts",), "greeting")
    if bp.escalation.tool is not None:
        if bp.escalation.tool not in _ESCALATION_TOOLS:
            yield ("escalation", "tool"), f"must be one of {list(_ESCALATION_TOOLS)}"
        yield from _tool(bp, ("escalation", "tool"), bp.escalation.tool)
    yield from _check_placeholders(bp)


def _check_tools(bp: Blueprint) -> Iterator[Problem]:
    for i, tool in enumerate(bp.tools_allowed):
        if tool not in TOOLS:
            yield ("tools_allowed", i), f"unknown tool {tool!r}; the fixed set is {sorted(TOOLS)}"
    if "hours.check" in bp.tools_allowed and bp.hours is None:
        yield ("hours",), "hours.check is allowed but the overlay declares no opening hours"
    if any(t.startswith("reservation.") for t in bp.tools_allowed) and bp.reservations is None:
        yield ("reservations",), "reservation tools are allowed but the overlay sets no capacity"


def _check_intents(bp: Blueprint) -> Iterator[Problem]:
    single: tuple[IntentRole, ...] = ("confirm", "deny", "escalate")
    for role in single:
        names = bp.role(role)
        if len(names) > 1:
            yield ("intents", names[1], "role"), f"only one intent may have role {role}"
    tasks = bp.role("task")
    if not tasks:
        yield ("intents",), "no intent with role task"
    if bp.default_intent is not None and bp.default_intent not in tasks:
        yield ("default_intent",), f"{bp.default_intent!r} is not a task intent"
    for name, intent in bp.intents.items():
        if intent.role == "task":
            yield from _check_task(bp, name, intent)


def _check_task(bp: Blueprint, name: str, intent: Intent) -> Iterator[Problem]:
    at = ("intents", name)
    for i, slot in enumerate(intent.slots):
        if slot not in bp.slots:
            yield (*at, "slots", i), f"no slot {slot!r} in slots"
    read_back: set[str] = set()
    conf = intent.confirmation
    if conf is not None:
        if not (bp.role("confirm") and bp.role("deny")):
            yield (*at, "confirmation"), "confirmation needs intents with roles confirm and deny"
        yield from _prompt(bp, (*at, "confirmation", "say"), conf.say)
        yield from _prompt(bp, (*at, "confirmation", "after_deny"), conf.after_deny)
        if conf.tool is not None:
            yield from _tool(bp, (*at, "confirmation", "tool"), conf.tool)
            yield from _args(bp, (*at, "confirmation", "args"), conf.tool, conf.args, intent.slots)
            if conf.tool in TOOLS:
                read_back = {f"read_back.{f}" for f in TOOLS[conf.tool].output.model_fields}
    if intent.submit is not None:
        sub = intent.submit
        yield from _prompt(bp, (*at, "submit", "say"), sub.say)
        yield from _tool(bp, (*at, "submit", "tool"), sub.tool)
        yield from _args(bp, (*at, "submit", "args"), sub.tool, sub.args,
                         [*intent.slots, *read_back])


def _check_slot(bp: Blueprint, name: str, slot: Slot) -> Iterator[Problem]:
    at = ("slots", name)
    for field in ("prompt", "added", "noted", "empty"):
        if getattr(slot, field) is not None:
            yield from _prompt(bp, (*at, field), getattr(slot, field))
    for field in ("reprompt", "unknown"):
        if getattr(slot.repair, field) is not None:
            yield from _prompt(bp, (*at, "repair", field), getattr(slot.repair, field))
    if slot.type == "order_lines" and (bp.menu is None or bp.currency is None):
        yield (*at, "type"), "order_lines needs a menu and a currency in the overlay"
    if slot.done_intent is not None and slot.done_intent not in bp.role("done"):
        yield (*at, "done_intent"), f"{slot.done_intent!r} is not an intent with role done"
    if slot.add_tool is not None:
        yield from _tool(bp, (*at, "add_tool"), slot.add_tool)
        contract = TOOLS.get(slot.add_tool)
        if contract and not ({"cart", "lines"} <= set(contract.input.model_fields)
                             and "cart" in contract.output.model_fields):
            yield (*at, "add_tool"), "an add tool takes {cart, lines} and returns {cart}"
    for i, rule in enumerate(slot.rules):
        r_at = (*at, "rules", i)
        yield from _prompt(bp, (*r_at, "say"), rule.say)
        if rule.check == "range" and slot.type != "party_size":
            yield (*r_at, "check"), f"range applies to number slots, not {slot.type}"
        if rule.check == "not_past":
            if slot.type not in ("date", "time"):
                yield (*r_at, "check"), f"not_past applies to date and time slots, not {slot.type}"
            if rule.date_slot is not None and bp.slots.get(rule.date_slot, slot).type != "date":
                yield (*r_at, "date_slot"), f"{rule.date_slot!r} is not a date slot"
        if isinstance(rule, ToolRule):
            yield from _check_tool_rule(bp, r_at, rule)


def _check_tool_rule(bp: Blueprint, at: tuple[Any, ...], rule: ToolRule) -> Iterator[Problem]:
    yield from _tool(bp, (*at, "tool"), rule.tool)
    yield from _args(bp, (*at, "args"), rule.tool, rule.args, list(bp.slots))
    contract = TOOLS.get(rule.tool)
    if contract is not None:
        field = contract.output.model_fields.get(rule.expect)
        if field is None or field.annotation is not bool:
            yield (*at, "expect"), f"{rule.tool} has no boolean output {rule.expect!r}"


def _tool(bp: Blueprint, at: tuple[Any, ...], tool: str) -> Iterator[Problem]:
    if tool not in TOOLS:
        yield at, f"unknown tool {tool!r}"
    elif tool not in bp.tools_allowed:
        yield at, f"{tool} is used here but not listed in tools_allowed"


def _args(bp: Blueprint, at: tuple[Any, ...], tool: str, args: dict[str, str],
          sources: list[str]) -> Iterator[Problem]:
    contract = TOOLS.get(tool)
    if contract is None:
        return
    fields = contract.input.model_fields
    for arg, source in args.items():
        if arg not in fields:
            yield (*at, arg), f"{tool} has no input {arg!r}"
        elif source not in sources:
            yield (*at, arg), f"{source!r} is not one of {sorted(sources)}"
    for f, info in fields.items():
        if info.is_required() and f not in args:
            yield at, f"{tool} needs input {f!r}"


def _prompt(bp: Blueprint, at: tuple[Any, ...], key: str) -> Iterator[Problem]:
    if key not in bp.prompts:
        yield at, f"no prompt {key!r} in prompts"


def _check_placeholders(bp: Blueprint) -> Iterator[Problem]:
    known = set(bp.prompt_values()) | set(bp.slots) | _ENGINE_VALUES
    for tool in bp.tools_allowed:
        if tool in TOOLS:
            known |= set(TOOLS[tool].output.model_fields)
    for key, text in bp.prompts.items():
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        except ValueError as exc:
            yield ("prompts", key), f"not a valid template: {exc}"
            continue
        for field in sorted(names - known):
            yield ("prompts", key), f"unknown placeholder {{{field}}}"
