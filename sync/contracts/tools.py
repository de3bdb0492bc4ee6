"""Typed tool calls: the boundary between conversation and execution."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sync.contracts.errors import Correlation, ErrorEnvelope


class ToolCall(BaseModel):
    """A request from the dialog to run one tool of the fixed set, with validated arguments."""

    tool: str = Field(pattern=r"^[a-z]+\.[a-z_]+$", description="e.g. order.submit")
    version: str = Field(default="1.0", pattern=r"^\d+\.\d+$")
    idempotency_key: str | None = None
    correlation: Correlation = Field(default_factory=Correlation)
    args: dict[str, Any] = Field(default_factory=dict)


class ToolResult(BaseModel):
    """Exactly one of result or error is set."""

    tool: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorEnvelope | None = None
