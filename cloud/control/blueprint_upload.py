"""An uploaded tenant overlay and/or menu, validated with the blueprints engine, and the
structural diff between two uploads.

Validation composes exactly what a box will compose (sector + overlay, with the menu
replacing the overlay's, + the default policy), so a version that passes here is one a
box accepts; a refusal names the file (`overlay.yaml` or `menu`), the path inside it and
the reason, and nothing is stored.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from blueprints.engine import BlueprintError, compose_builtin, load_yaml
from cloud.control.control_errors import ControlError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
OVERLAY_FILE, MENU_FILE = "overlay.yaml", "menu"


class DraftUpload(BaseModel):
    """Body of POST .../rollouts: a tenant overlay (JSON or YAML text) and/or a menu.

    Without an overlay the menu is checked against `base_overlay`, the overlay the boxes
    were configured with (the box keeps its own overlay and replaces only the menu).
    """

    model_config = ConfigDict(extra="forbid")

    sector: str = Field(default="restaurant_orders", pattern=NAME_PATTERN)
    base_overlay: str = Field(default="demo_pizza", pattern=NAME_PATTERN)
    overlay: dict[str, Any] | None = None
    overlay_yaml: str | None = Field(default=None, max_length=1_000_000)
    menu: dict[str, Any] | None = None
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> DraftUpload:
        if self.overlay is not None and self.overlay_yaml is not None:
            raise ValueError("send the overlay once: either overlay or overlay_yaml")
        if self.overlay is None and self.overlay_yaml is None and self.menu is None:
            raise ValueError("a draft needs an overlay (overlay or overlay_yaml) or a menu")
        return self


class DiffEntry(BaseModel):
    """One difference: the JSON-pointer-like path, what happened, the values either side."""

    path: str
    op: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


def _refused(file: str, path: str, reason: str) -> ControlError:
    return ControlError("invalid", "blueprint.invalid", f"{file}: {path}: {reason}")


def parsed_overlay(body: DraftUpload) -> dict[str, Any] | None:
    """The overlay document of the upload; YAML errors are refused with file and line."""
    if body.overlay_yaml is None:
        return body.overlay
    try:
        doc = yaml.safe_load(body.overlay_yaml)
    except yaml.YAMLError as exc:
        raise _refused(OVERLAY_FILE, "/", f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise _refused(OVERLAY_FILE, "/", "top level must be a mapping")
    return doc


def validate_upload(sector: str, base_overlay: str, overlay: dict[str, Any] | None,
                    menu: dict[str, Any] | None) -> str:
    """Compose the upload as a box would; its blueprint content hash, or ControlError
    (422 blueprint.invalid) naming file, path and reason."""
    if overlay is not None:
        doc = dict(overlay)
    else:
        base = Path(str(resources.files("blueprints") / "tenants" / f"{base_overlay}.yaml"))
        if not base.is_file():
            raise _refused("base_overlay", "/", f"no built-in overlay named {base_overlay!r}")
        doc = load_yaml(base)
    if menu is not None:
        doc["menu"] = menu
    if not Path(str(resources.files("blueprints") / "sectors" / f"{sector}.yaml")).is_file():
        raise _refused("sector", "/", f"no built-in sector named {sector!r}")
    with tempfile.TemporaryDirectory(prefix="vx-upload-") as tmp:
        path = Path(tmp) / OVERLAY_FILE
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            return compose_builtin(sector, str(path)).content_hash or ""
        except BlueprintError as exc:
            if exc.source != str(path):
                file = Path(exc.source).name
            elif menu is not None and (exc.path == "/menu" or exc.path.startswith("/menu/")):
                file = MENU_FILE
            else:
                file = OVERLAY_FILE
            raise _refused(file, exc.path, exc.reason) from exc


def structural_diff(before: Any, after: Any, path: str = "") -> list[DiffEntry]:
    """Differences between two JSON documents: mappings key by key, lists item by item."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[DiffEntry] = []
        for key in sorted({*before, *after}, key=str):
            here = f"{path}/{key}"
            if key not in after:
                out.append(DiffEntry(path=here, op="removed", before=before[key]))
            elif key not in before:
                out.append(DiffEntry(path=here, op="added", after=after[key]))
            else:
                out += structural_diff(before[key], after[key], here)
        return out
    if isinstance(before, list) and isinstance(after, list):
        out = []
        for i in range(max(len(before), len(after))):
            here = f"{path}/{i}"
            if i >= len(after):
                out.append(DiffEntry(path=here, op="removed", before=before[i]))
            elif i >= len(before):
                out.append(DiffEntry(path=here, op="added", after=after[i]))
            else:
                out += structural_diff(before[i], after[i], here)
        return out
    if before == after and type(before) is type(after):
        return []
    return [DiffEntry(path=path or "/", op="changed", before=before, after=after)]
