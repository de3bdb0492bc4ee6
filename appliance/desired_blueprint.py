"""The blueprint a desired state composes to: its overlay (or the configured one) with its
menu, merged with the box's sector and policy by the blueprints engine.

voxeron-sync composes it to decide apply or reject; voxeron-voice composes the same
document again at call start, so both processes agree on what is in force.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from blueprints.engine import BlueprintError, compose_builtin, load_yaml
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.messages import DesiredState


class DesiredInvalid(ValueError):
    """A desired state the box cannot run; `envelope` says why, for up/reported."""

    def __init__(self, envelope: ErrorEnvelope) -> None:
        super().__init__(envelope.message)
        self.envelope = envelope


@dataclass(frozen=True)
class DesiredComposer:
    """Composes desired states against this box's sector, configured overlay and policy."""

    sector: str = "restaurant_orders"
    overlay: str = "demo_pizza"
    policy: str = "default"

    def compose(self, desired: DesiredState) -> Blueprint:
        """The blueprint of `desired`; DesiredInvalid names the part that is wrong."""
        doc = dict(desired.blueprint_overlay) if desired.blueprint_overlay is not None \
            else self._configured_overlay()
        if desired.menu is not None:
            doc["menu"] = desired.menu
        name = f"desired-v{desired.version}.yaml"
        with tempfile.TemporaryDirectory(prefix="vx-desired-") as tmp:
            path = Path(tmp) / name
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            try:
                return compose_builtin(self.sector, str(path), self.policy)
            except BlueprintError as exc:
                source = name if exc.source == str(path) else Path(exc.source).name
                raise _invalid(desired, f"{source}: {exc.path}: {exc.reason}") from exc

    def blueprint_hash(self, desired: DesiredState) -> str | None:
        """Validate `desired`; the content hash of its blueprint (None: nothing to compose)."""
        if desired.blueprint_overlay is None and desired.menu is None:
            return None
        return self.compose(desired).content_hash

    def _configured_overlay(self) -> dict[str, Any]:
        path = Path(self.overlay)
        if path.suffix not in (".yaml", ".yml"):
            path = Path(str(resources.files("blueprints") / "tenants" / f"{self.overlay}.yaml"))
        return load_yaml(path)


def _invalid(desired: DesiredState, reason: str) -> DesiredInvalid:
    return DesiredInvalid(ErrorEnvelope(
        code="desired.blueprint_invalid", category="validation",
        message=f"desired state v{desired.version} does not compose: {reason}",
        correlation=Correlation(tenant_id=desired.tenant_id, device_id=desired.device_id),
    ))
