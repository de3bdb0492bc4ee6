"""When to probe a dead provider again, and what a probe's answer means: a pure state machine.

A provider marked dead (a call failed over from it) is never routed to, so nothing but a
probe can show that it works again. The first probe waits one cool-down after the death
was seen; each failed probe doubles the cool-down up to a cap, so a provider that stays
broken (a missing model) costs one cheap probe every few minutes, not a busy loop. Time is
passed in (`now`), never read, so a day of failed probes is a unit test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import BaseModel, Field, model_validator

from appliance.voice.providers import Health


class Cooldown(BaseModel):
    """Exponential, capped wait between probes of one dead provider."""

    first_s: float = Field(default=10.0, gt=0, description="wait before the first probe")
    factor: float = Field(default=2.0, ge=1, description="growth after each failed probe")
    cap_s: float = Field(default=300.0, gt=0, description="longest wait between probes")

    @model_validator(mode="after")
    def _cap_not_below_first(self) -> Cooldown:
        if self.cap_s < self.first_s:
            raise ValueError(f"cap_s ({self.cap_s}) is below first_s ({self.first_s})")
        return self


@dataclass(frozen=True)
class DeadProvider:
    """One provider being waited out: since when, the current cool-down, probes so far."""

    name: str
    dead_since: datetime
    cooldown_s: float
    next_probe: datetime
    probes: int = 0
    probing: bool = False


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe decided: recovered (mark it healthy, log once) or still dead until
    `next_probe`, after `cooldown_s`."""

    name: str
    recovered: bool
    probes: int
    dead_for_s: float
    cooldown_s: float = 0.0
    next_probe: datetime | None = None


class RecoverySchedule:
    """Tracks the dead providers it is shown and says which to probe at `now`."""

    def __init__(self, cooldown: Cooldown | None = None) -> None:
        self.cooldown = cooldown or Cooldown()
        self._dead: dict[str, DeadProvider] = {}

    @property
    def dead(self) -> Mapping[str, DeadProvider]:
        return dict(self._dead)

    def observe(self, states: Mapping[str, Health], now: datetime) -> None:
        """Start the cool-down of providers newly dead; forget those no longer dead (a
        worker restart marked them healthy, or an operator did)."""
        for name, state in states.items():
            if state is Health.DEAD and name not in self._dead:
                self._dead[name] = DeadProvider(
                    name=name, dead_since=now, cooldown_s=self.cooldown.first_s,
                    next_probe=now + timedelta(seconds=self.cooldown.first_s))
            elif state is not Health.DEAD:
                self._dead.pop(name, None)

    def due(self, now: datetime) -> list[str]:
        """Providers whose cool-down is over, now marked as being probed (never twice at once)."""
        names = sorted(n for n, d in self._dead.items() if not d.probing and d.next_probe <= now)
        for n in names:
            self._dead[n] = replace(self._dead[n], probing=True)
        return names

    def next_due(self) -> datetime | None:
        """The earliest probe still to come, so a loop can sleep until then."""
        waiting = [d.next_probe for d in self._dead.values() if not d.probing]
        return min(waiting) if waiting else None

    def probed(self, name: str, ok: bool, now: datetime) -> ProbeOutcome | None:
        """Apply a probe's result; None when `name` stopped being tracked meanwhile."""
        d = self._dead.get(name)
        if d is None:
            return None
        dead_for = (now - d.dead_since).total_seconds()
        if ok:
            del self._dead[name]
            return ProbeOutcome(name=name, recovered=True, probes=d.probes + 1, dead_for_s=dead_for)
        cooldown = min(self.cooldown.cap_s, d.cooldown_s * self.cooldown.factor)
        nxt = now + timedelta(seconds=cooldown)
        self._dead[name] = replace(d, cooldown_s=cooldown, next_probe=nxt, probes=d.probes + 1,
                                   probing=False)
        return ProbeOutcome(name=name, recovered=False, probes=d.probes + 1, dead_for_s=dead_for,
                            cooldown_s=cooldown, next_probe=nxt)
