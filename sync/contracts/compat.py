"""Decide whether a new JSON Schema is a backward-compatible evolution of an old one.

Compatible (additive): new optional properties, new definitions, new enum values, changed
titles and descriptions. Breaking: anything a reader or writer of the old schema could
trip on: a removed property or definition, a newly required property, a changed type,
a removed enum value or union alternative, a changed constraint. When unsure, breaking.
"""

from __future__ import annotations

import json
from typing import Any

_IGNORED = {"title", "description", "default", "examples", "x-voxeron-version"}


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every breaking difference from `old` to `new`, as readable JSON-pointer-ish paths."""
    problems: list[str] = []
    _compare(old, new, "#", problems)
    return problems


def _dump(node: Any) -> str:
    return json.dumps(node, sort_keys=True)


def _compare(old: Any, new: Any, path: str, out: list[str]) -> None:
    if not isinstance(old, dict) or not isinstance(new, dict):
        if _dump(old) != _dump(new):
            out.append(f"{path}: changed from {_dump(old)} to {_dump(new)}")
        return
    for key in sorted(set(old) | set(new)):
        if key in _IGNORED:
            continue
        here = f"{path}/{key}"
        if key not in new:
            out.append(f"{here}: removed")
        elif key not in old:
            if key not in ("properties", "$defs", "enum"):
                out.append(f"{here}: new constraint")
        elif key in ("properties", "$defs", "mapping"):  # a new discriminator value is a new alternative
            for name in sorted(old[key]):
                if name not in new[key]:
                    out.append(f"{here}/{name}: removed")
                else:
                    _compare(old[key][name], new[key][name], f"{here}/{name}", out)
        elif key == "required":
            added = sorted(set(new[key]) - set(old[key]))
            if added:
                out.append(f"{here}: newly required {added}")
        elif key == "enum":
            gone = [v for v in old[key] if v not in new[key]]
            if gone:
                out.append(f"{here}: values removed {gone}")
        elif key in ("anyOf", "oneOf"):
            new_alts = {_dump(a) for a in new[key]}
            for alt in old[key]:
                if _dump(alt) not in new_alts:
                    out.append(f"{here}: alternative removed or changed {_dump(alt)}")
        else:
            _compare(old[key], new[key], here, out)
