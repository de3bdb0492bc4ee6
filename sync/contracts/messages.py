"""Edge-protocol payloads on the MQTT topics of `sync.topics` (besides events)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from sync.contracts.errors import ErrorEnvelope

MESSAGE_SCHEMA_VERSION = "1.0"


class Ack(BaseModel):
    """The cloud's answer to one event on down/acks; duplicate means already stored."""

    schema_version: str = Field(default=MESSAGE_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    event_id: str
    seq: int = Field(ge=1)
    status: Literal["stored", "duplicate", "rejected"]
    error: ErrorEnvelope | None = None


class DeviceStatus(BaseModel):
    """Retained online flag; the broker publishes the offline form as the last will."""

    schema_version: str = Field(default=MESSAGE_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    tenant_id: str
    device_id: str
    online: bool
    at: datetime | None = None


class Health(BaseModel):
    """Periodic health report of a box."""

    schema_version: str = Field(default=MESSAGE_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    tenant_id: str
    device_id: str
    at: datetime
    outbox_depth: int = Field(ge=0)
    printer: Literal["ok", "offline", "paper_out", "cover_open", "unknown"] = "unknown"
    firmware: str
