"""A circuit breaker per tenant per integration, as a pure value: time is passed in.

closed: requests flow; `failure_threshold` consecutive failures open it. open: nothing is
sent until `cooldown_s` has passed, then it is half_open. half_open: exactly one probe
may go; its success closes the breaker, its failure opens it for another cool-down.
While open, actions wait without spending attempts, so an hour-long POS outage costs a
handful of attempts instead of dead-lettering every order of that hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BreakerMode = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    """When the breaker opens and how long it stays open before a probe."""

    failure_threshold: int = 5
    cooldown_s: float = 30.0


class Breaker(BaseModel):
    """Stored state of one (tenant, integration) breaker."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    integration_id: str
    mode: BreakerMode = "closed"
    failures: int = Field(default=0, ge=0, description="consecutive failures")
    opened_at: datetime | None = None
    probe_in_flight: bool = False

    def admits(self, now: datetime, policy: BreakerPolicy) -> int | None:
        """How many actions may be claimed now: None = no limit from the breaker, 0 = none."""
        if self.mode == "closed":
            return None
        if self.mode == "open":
            assert self.opened_at is not None
            if now < self.opened_at + timedelta(seconds=policy.cooldown_s):
                return 0
            return 1
        return 0 if self.probe_in_flight else 1

    def on_claim(self, now: datetime, policy: BreakerPolicy) -> Breaker:
        """After claiming while not closed: the one probe is out (open becomes half_open)."""
        if self.mode == "closed":
            return self
        return self.model_copy(update={"mode": "half_open", "probe_in_flight": True})

    def on_success(self) -> Breaker:
        """The peer answered coherently (a 2xx, or a permanent 4xx refusal): it is up."""
        return self.model_copy(update={"mode": "closed", "failures": 0, "opened_at": None,
                                       "probe_in_flight": False})

    def on_failure(self, now: datetime, policy: BreakerPolicy) -> Breaker:
        """A retryable failure (5xx, timeout, refused, 429) of a delivery on this integration."""
        failures = self.failures + 1
        if self.mode == "half_open" or failures >= policy.failure_threshold:
            return self.model_copy(update={"mode": "open", "failures": failures,
                                           "opened_at": now, "probe_in_flight": False})
        return self.model_copy(update={"failures": failures})
