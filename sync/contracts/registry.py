"""The list of contract surfaces, their versions and the models that define them.

Bump a surface's version here when its models change: minor for an additive change,
major for a breaking one. `voxeron contracts check` holds the code to these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sync.contracts.actions import Action, ActionEvent
from sync.contracts.errors import ErrorEnvelope
from sync.contracts.events import EventEnvelope
from sync.contracts.messages import (
    Ack,
    Command,
    DesiredState,
    DeviceStatus,
    Health,
    ReportedState,
)
from sync.contracts.order import Order
from sync.contracts.tool_schemas import tool_models
from sync.contracts.tools import ToolCall, ToolResult


@dataclass(frozen=True)
class Surface:
    """One frozen contract surface: a name, a major.minor version and its root models."""

    name: str
    version: str
    models: tuple[type[BaseModel], ...]

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def json_schema(self) -> dict[str, Any]:
        """The surface as one JSON Schema document; deterministic for the same models."""
        _, top = models_json_schema(
            [(m, "validation") for m in self.models], title=f"voxeron {self.name}"
        )
        top["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        top["x-voxeron-surface"] = self.name
        top["x-voxeron-version"] = self.version
        top["x-voxeron-roots"] = [m.__name__ for m in self.models]
        return top


SURFACES: tuple[Surface, ...] = (
    # 1.1: order lines carry styles, refusals, container and volume (additive).
    Surface("order", "1.1", (Order,)),
    # 1.2: ticket.failed, order.cancelled, order.superseded, ticket.reprint_requested (additive).
    Surface("order-event", "1.2", (EventEnvelope,)),
    Surface("tool-call", "1.0", (ToolCall, ToolResult)),
    Surface("error-envelope", "1.0", (ErrorEnvelope,)),
    # 1.1: disk, outbox-age and print-queue figures and alerts in health (additive).
    # 1.2: per-provider usage of the day in health (additive).
    Surface("edge-messages", "1.2", (Ack, DeviceStatus, Health)),
    # The authoritative half of the edge protocol (same module, same 1.x payload versions);
    # its own surface because a new root would read as a breaking change of edge-messages.
    # 1.1: the tenant's policy (calls per minute, transcript/recording retention) (additive).
    Surface("edge-state", "1.1", (DesiredState, ReportedState, Command)),
    # The fixed tool set; each tool also carries its own version in tool_schemas.TOOLS.
    Surface("tools", "1.1", tool_models()),
    # The integration plane's action lifecycle: actions and their immutable transition events.
    # 1.1: the pos_cancel action kind (cancel an order already written to the POS) (additive).
    Surface("action-lifecycle", "1.1", (Action, ActionEvent)),
)
