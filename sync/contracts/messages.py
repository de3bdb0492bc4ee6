"""Edge-protocol payloads on the MQTT topics of `sync.topics` (besides events).

1.1 adds the authoritative half of sync (additive): the cloud's versioned `DesiredState`
(down/desired, retained), the box's `ReportedState` with per-day `DaySummary` figures for
reconciliation (up/reported), `Command`s the cloud issues for one order or day
(down/commands), and disk/outbox figures in `Health`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from sync.contracts.errors import ErrorEnvelope
from sync.contracts.order import Order

MESSAGE_SCHEMA_VERSION = "1.1"


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
    at: dt.datetime | None = None


class ProviderUsage(BaseModel):
    """One provider's use on one UTC day, summed over the box's calls: a running total that
    each report repeats, so the cloud keeps the latest and never adds reports up (1.2)."""

    day: dt.date
    provider: str = Field(min_length=1, max_length=64)
    kind: Literal["asr", "tts", "nlu"]
    seconds: float = Field(default=0.0, ge=0, description="audio seconds heard or spoken")
    tokens: int = Field(default=0, ge=0, description="NLU/LLM tokens")
    est_cost_cents: float = Field(default=0.0, ge=0, description="from the box's provider rates")


class Health(BaseModel):
    """Periodic health report of a box; the 1.1 figures are None when the box cannot tell."""

    schema_version: str = Field(default=MESSAGE_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    tenant_id: str
    device_id: str
    at: dt.datetime
    outbox_depth: int = Field(ge=0)
    printer: Literal["ok", "offline", "paper_out", "cover_open", "unknown"] = "unknown"
    firmware: str
    disk_free_bytes: int | None = Field(default=None, ge=0, description="free bytes on the data disk")
    outbox_oldest_age_s: float | None = Field(
        default=None, ge=0, description="age of the oldest unacked outbox event")
    print_pending: int | None = Field(default=None, ge=0, description="tickets waiting to print")
    print_dead_lettered: int | None = Field(default=None, ge=0)
    alerts: list[str] = Field(default_factory=list, description="active alerts, e.g. disk_low")
    usage: list[ProviderUsage] | None = Field(
        default=None, max_length=256, description="provider use per UTC day (1.2)")


class TenantPolicy(BaseModel):
    """The tenant's quotas and retention that only the box can enforce, because calls and
    transcripts live there (edge-state 1.1). None = no limit / keep the box's default."""

    calls_per_min: int | None = Field(
        default=None, ge=0, description="new calls answered per rolling minute; more go to "
                                        "the staff line; 0 answers none")
    transcripts_days: int | None = Field(
        default=None, ge=0, description="days caller and agent turns are kept; 0 = not stored")
    recordings_days: int | None = Field(
        default=None, ge=0, description="days call audio is kept; 0 = never recorded")


class DesiredState(BaseModel):
    """What the cloud wants a box to run; `version` grows by one per change of a device.

    `blueprint_overlay` is a whole tenant overlay document and `menu` replaces its menu;
    None keeps what the box was configured with. Flags switch behaviour: `answer_calls`
    false is the kill switch (calls go to the staff, no order is taken).
    """

    schema_version: str = Field(default=MESSAGE_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    tenant_id: str
    device_id: str
    version: int = Field(ge=1)
    issued_at: dt.datetime
    blueprint_overlay: dict[str, Any] | None = None
    menu: dict[str, Any] | None = None
    flags: dict[str, bool] = Field(default_factory=dict)
    routing: dict[str, Any] = Field(default_factory=dict, description="read by vendor routing")
    firmware_target: str | None = None
    policy: TenantPolicy | None = Field(default=None, description="tenant quotas and retention (1.1)")

    @property
    def answer_calls(self) -> bool:
        return self.flags.get("answer_calls", True)


def day_digest(orders: Iterable[tuple[str, str]]) -> str:
    """SHA-256 over the day's (order_id, status) pairs, sorted: equal on box and cloud iff
    both hold the same orders in the same states."""
    text = "".join(f"{order_id}:{status}\n" for order_id, status in sorted(orders))
    return hashlib.sha256(text.encode()).hexdigest()


class DaySummary(BaseModel):
    """One UTC day of orders on the box, small enough to report every time."""

    day: dt.date
    orders: int = Field(ge=0)
    tickets_printed: int = Field(ge=0, description="orders with a printed kitchen ticket")
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="see day_digest")
    cancelled_order_ids: list[str] = Field(default_factory=list)
    pending_events: int = Field(
        default=0, ge=0, description="outbox events of the day not acked yet; >0: still draining")


CommandKind = Literal["cancel", "supersede", "reprint", "resync"]
CommandStatus = Literal["applied", "duplicate", "rejected"]


class CommandOutcome(BaseModel):
    """What the box did with one command; reported until the cloud has it."""

    command_id: str
    kind: CommandKind
    status: CommandStatus
    reason: str | None = None
    at: dt.datetime


class ReportedState(BaseModel):
    """What is in force on the box: the applied desired version, the verdict on the latest
    one it saw, day figures for reconciliation and command outcomes not yet reported."""

    schema_version: str = Field(default=MESSAGE_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    tenant_id: str
    device_id: str
    at: dt.datetime
    applied_version: int = Field(ge=0, description="0 before any desired state was applied")
    status: Literal["applied", "rejected"]
    rejected_version: int | None = Field(default=None, ge=1)
    error: ErrorEnvelope | None = None
    blueprint_hash: str | None = None
    days: list[DaySummary] = Field(default_factory=list)
    commands: list[CommandOutcome] = Field(default_factory=list)


class Command(BaseModel):
    """One instruction for one box, applied there exactly once by `command_id`."""

    schema_version: str = Field(default=MESSAGE_SCHEMA_VERSION, pattern=r"^1\.\d+$")
    command_id: str = Field(pattern=r"^cmd_[0-9A-Z]{26}$")
    tenant_id: str
    device_id: str
    issued_at: dt.datetime
    kind: CommandKind
    order_id: str | None = None
    replacement: Order | None = None
    day: dt.date | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _complete(self) -> Command:
        if self.kind in ("cancel", "supersede", "reprint") and not self.order_id:
            raise ValueError(f"a {self.kind} command needs order_id")
        if self.kind == "supersede" and self.replacement is None:
            raise ValueError("a supersede command needs the replacement order")
        if self.kind == "resync" and self.day is None:
            raise ValueError("a resync command needs the day")
        return self
