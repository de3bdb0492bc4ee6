"""The one error envelope used from tool call to HTTP API and MQTT ack.

An exception never crosses a process boundary as a traceback; it crosses as this.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ErrorCategory = Literal["validation", "integration", "timeout", "rate_limit", "unavailable"]


class Correlation(BaseModel):
    """Canonical ids that tie a record to its tenant, device, call, order and action."""

    tenant_id: str | None = None
    device_id: str | None = None
    call_id: str | None = None
    session_id: str | None = None
    order_id: str | None = None
    action_id: str | None = None
    event_id: str | None = None


class ErrorEnvelope(BaseModel):
    """A failure as data: stable machine code, category, user-safe message, retry guidance."""

    code: str = Field(description="stable machine-readable code, e.g. menu.item_unknown")
    category: ErrorCategory
    message: str = Field(description="safe to show or say to a user; never a traceback")
    retryable: bool = False
    retry_after_s: float | None = Field(default=None, ge=0)
    correlation: Correlation = Field(default_factory=Correlation)
