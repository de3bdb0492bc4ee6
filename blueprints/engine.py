"""Compose sector blueprint + tenant overlay + runtime policy into one hashed Blueprint.

Composition is a deterministic deep merge (overlay wins, mappings merge, lists replace)
followed by validation; the hash is SHA-256 over the canonical JSON of the result, so the
same three inputs give the same hash on any machine.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from blueprints.model import Blueprint


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
    try:
        bp = Blueprint.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = "/".join(str(p) for p in err["loc"])
        origin = policy if loc.startswith("policy") else _origin(layers, err["loc"])
        raise BlueprintError(str(origin), "/" + loc, err["msg"]) from exc
    canonical = json.dumps(bp.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return bp.model_copy(update={"content_hash": hashlib.sha256(canonical.encode()).hexdigest()})


def _origin(layers: list[tuple[Path, dict[str, Any]]], loc: tuple[Any, ...]) -> Path:
    """The last layer that set the top-level key an error is about (or the sector)."""
    for path, data in reversed(layers):
        if loc and loc[0] in data:
            return path
    return layers[0][0]


def compose_builtin(sector: str, overlay: str, policy: str = "default") -> Blueprint:
    """Compose from the YAML files shipped in this package (or paths, if given paths)."""

    def pick(kind: str, name: str) -> Path:
        p = Path(name)
        return p if p.suffix in (".yaml", ".yml") else _builtin(kind, name)

    return compose(pick("sectors", sector), pick("tenants", overlay), pick("policies", policy))
