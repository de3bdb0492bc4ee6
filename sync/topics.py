"""MQTT topic names of the edge protocol (vx/v1/t/{tenant}/d/{device}/...).

The version segment is part of the edge-protocol contract: a breaking change to topic
layout means vx/v2, served side by side with v1 until the fleet has moved.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "vx/v1"


@dataclass(frozen=True)
class DeviceTopics:
    """Every topic one device uses, derived from its tenant and device id."""

    tenant_id: str
    device_id: str

    @property
    def root(self) -> str:
        return f"{PREFIX}/t/{self.tenant_id}/d/{self.device_id}"

    @property
    def events(self) -> str:
        return f"{self.root}/up/events"

    @property
    def acks(self) -> str:
        return f"{self.root}/down/acks"

    @property
    def desired(self) -> str:
        return f"{self.root}/down/desired"

    @property
    def reported(self) -> str:
        return f"{self.root}/up/reported"

    @property
    def commands(self) -> str:
        return f"{self.root}/down/commands"

    @property
    def health(self) -> str:
        return f"{self.root}/up/health"

    @property
    def status(self) -> str:
        return f"{self.root}/status"


# Filters the cloud subscribes to (one level per tenant and device).
ALL_EVENTS = f"{PREFIX}/t/+/d/+/up/events"
ALL_STATUS = f"{PREFIX}/t/+/d/+/status"
ALL_HEALTH = f"{PREFIX}/t/+/d/+/up/health"
ALL_REPORTED = f"{PREFIX}/t/+/d/+/up/reported"


def parse_device_topic(topic: str) -> tuple[str, str, str]:
    """Split a device topic into (tenant_id, device_id, suffix); ValueError if it is not one."""
    parts = topic.split("/")
    if len(parts) < 7 or "/".join(parts[:2]) != PREFIX or parts[2] != "t" or parts[4] != "d":
        raise ValueError(f"not a device topic: {topic!r}")
    return parts[3], parts[5], "/".join(parts[6:])
