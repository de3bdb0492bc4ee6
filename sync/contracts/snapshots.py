"""Committed schema snapshots under contracts/: one file per surface and version, never rewritten.

Check rules: the code's schema of each surface must equal the snapshot of the version the
code declares (a change without a version bump fails), and every snapshot must be a
compatible evolution of the one before it within the same major version (a breaking
change under a minor bump fails).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sync.contracts.compat import breaking_changes
from sync.contracts.registry import SURFACES, Surface


def snapshot_path(root: Path, name: str, version: str) -> Path:
    return root / name / f"{version}.schema.json"


def _version_key(p: Path) -> tuple[int, int]:
    major, minor = p.name.removesuffix(".schema.json").split(".")
    return int(major), int(minor)


def _load(p: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(p.read_text())
    return data


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_snapshots(root: Path, surfaces: tuple[Surface, ...] = SURFACES) -> list[Path]:
    """Write the snapshot of each surface's current version if it does not exist yet."""
    written = []
    for s in surfaces:
        p = snapshot_path(root, s.name, s.version)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(render(s.json_schema()))
            written.append(p)
    return written


def check_snapshots(root: Path, surfaces: tuple[Surface, ...] = SURFACES) -> list[str]:
    """Every violation of the rules above, as messages naming surface, version and path."""
    problems: list[str] = []
    for s in surfaces:
        p = snapshot_path(root, s.name, s.version)
        if not p.exists():
            problems.append(
                f"{s.name} {s.version}: no snapshot {p}; run `voxeron contracts write` and commit it"
            )
        elif render(_load(p)) != render(s.json_schema()):
            problems.append(
                f"{s.name} {s.version}: models differ from the frozen snapshot {p}; "
                "bump the version in sync/contracts/registry.py (minor if additive, major if "
                "breaking) and run `voxeron contracts write`"
            )
        versions = sorted((root / s.name).glob("*.schema.json"), key=_version_key)
        for older, newer in zip(versions, versions[1:], strict=False):
            if _version_key(older)[0] != _version_key(newer)[0]:
                continue
            for change in breaking_changes(_load(older), _load(newer)):
                problems.append(
                    f"{s.name}: {newer.name} breaks {older.name} within a major version: {change}"
                )
    return problems
