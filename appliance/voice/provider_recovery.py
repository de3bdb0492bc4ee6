"""Dead providers come back: probe each one after its cool-down, mark it healthy when it works.

A worker-process ASR engine is marked healthy again by the pool's restart hook
(`AsrPool.on_restart`). Nothing restarts a provider that runs inside the voice process
(pocketsphinx, Piper, Whisper with `asr_isolation` off), and a worker that died in the
middle of a decode, or whose restart failed, is never asked for again once routing skips
it. This loop covers all of them: recovery_schedule.py decides when, a cheap probe (half a
second of silence decoded, a short sentence synthesised) decides whether.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import numpy as np

from appliance.voice.asr_pool import AsrPool
from appliance.voice.providers import Health, ProviderKind, ProviderRegistry, TtsProvider
from appliance.voice.recovery_schedule import Cooldown, ProbeOutcome, RecoverySchedule
from sync.structured_log import fields

log = logging.getLogger(__name__)

Probe = Callable[[], None]  # blocking; raises when the provider still does not work
PROBE_TIMEOUT_S = 90.0  # a worker's model load (60 s) plus a decode: past it the probe failed
TTS_PROBE_TEXT = "One moment."


def utcnow() -> datetime:
    return datetime.now(UTC)


def asr_probe(pool: AsrPool, name: str) -> Probe:
    """A fresh engine for `name` loads and decodes silence, then serves the pool."""
    return lambda: pool.probe(name)


def tts_probe(tts: TtsProvider) -> Probe:
    """The voice synthesises a short sentence into audio that is not empty."""
    def probe() -> None:
        audio = list(tts.sentences(TTS_PROBE_TEXT))
        if not audio or not any(np.any(a) for a in audio):
            raise RuntimeError("synthesised no audio")
    return probe


def probes_for(registry: ProviderRegistry, pool: AsrPool | None,
               tts: TtsProvider | None) -> dict[str, Probe]:
    """A probe for every ASR provider the pool serves and every TTS provider (one voice
    object serves them in this process). The rule NLU is plain Python that cannot die on
    its own, so it has none."""
    probes: dict[str, Probe] = {}
    for d in registry.descriptors.values():
        if d.kind is ProviderKind.ASR and pool is not None:
            probes[d.name] = asr_probe(pool, d.name)
        elif d.kind is ProviderKind.TTS and tts is not None:
            probes[d.name] = tts_probe(tts)
    return probes


class ProviderRecovery:
    """Runs due probes one at a time (two cores: never two model loads at once) and marks
    the providers that pass healthy in `registry`."""

    def __init__(self, registry: ProviderRegistry, probes: Mapping[str, Probe],
                 cooldown: Cooldown | None = None, *, clock: Callable[[], datetime] = utcnow,
                 probe_timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.registry, self.probes, self.clock = registry, dict(probes), clock
        self.schedule = RecoverySchedule(cooldown)
        self.probe_timeout_s = probe_timeout_s

    async def run(self, stop: asyncio.Event, tick_s: float = 1.0) -> None:
        """Check for dead providers every `tick_s` until `stop` is set."""
        while not stop.is_set():
            await self.step()
            try:
                await asyncio.wait_for(stop.wait(), timeout=tick_s)
            except TimeoutError:
                pass

    async def step(self) -> list[ProbeOutcome]:
        """See which providers are dead now and probe those whose cool-down is over."""
        states = {name: h.state for name, h in self.registry.health.items() if name in self.probes}
        self.schedule.observe(states, self.clock())
        outcomes = []
        for name in self.schedule.due(self.clock()):
            error = await self._probe(name)
            outcome = self.schedule.probed(name, error is None, self.clock())
            if outcome is not None:
                self._apply(outcome, error)
                outcomes.append(outcome)
        return outcomes

    async def _probe(self, name: str) -> str | None:
        """The probe's error, or None when the provider works."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self.probes[name]), self.probe_timeout_s)
        except TimeoutError:
            return f"probe took over {self.probe_timeout_s:.0f} s"
        except Exception as err:  # any failure of the probe is a still-dead provider
            return f"{type(err).__name__}: {err}"
        return None

    def _apply(self, outcome: ProbeOutcome, error: str | None) -> None:
        if outcome.recovered:
            if self.registry.health[outcome.name].state is Health.DEAD:
                self.registry.mark(outcome.name, Health.HEALTHY, self.clock())
            log.info("provider recovered", extra=fields(
                provider=outcome.name, probes=outcome.probes, dead_for_s=round(outcome.dead_for_s)))
            return
        log.info("provider still dead", extra=fields(
            provider=outcome.name, probes=outcome.probes, error=error,
            next_probe_in_s=round(outcome.cooldown_s)))


def provider_recovery(registry: ProviderRegistry, pool: AsrPool | None, tts: TtsProvider | None,
                      cooldown: Cooldown | None = None) -> ProviderRecovery:
    """The voice service's recovery loop over every provider it can probe."""
    return ProviderRecovery(registry, probes_for(registry, pool, tts), cooldown)
