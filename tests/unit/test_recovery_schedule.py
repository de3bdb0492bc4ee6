"""Dead-provider recovery: when to probe (pure schedule) and what a probe's answer does."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from appliance.voice.asr_pool import AsrPool
from appliance.voice.provider_recovery import ProviderRecovery, probes_for
from appliance.voice.providers import BUILTIN, Health, ProviderRegistry
from appliance.voice.recovery_schedule import Cooldown, RecoverySchedule

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_first_probe_waits_one_cooldown_and_is_never_run_twice_at_once() -> None:
    s = RecoverySchedule(Cooldown(first_s=10, cap_s=300))
    s.observe({"pocketsphinx": Health.DEAD, "piper-joe": Health.HEALTHY}, T0)
    assert s.due(at(9.9)) == [] and s.next_due() == at(10)
    assert s.due(at(10)) == ["pocketsphinx"]
    assert s.due(at(11)) == [] and s.next_due() is None  # being probed
    s.observe({"pocketsphinx": Health.DEAD}, at(12))  # seen dead again: the clock is not reset
    assert s.dead["pocketsphinx"].dead_since == T0


def test_each_failed_probe_doubles_the_cooldown_up_to_the_cap() -> None:
    s = RecoverySchedule(Cooldown(first_s=10, factor=2, cap_s=100))
    s.observe({"pocketsphinx": Health.DEAD}, T0)
    now, waits = at(10), []
    for _ in range(6):
        assert s.due(now) == ["pocketsphinx"]
        outcome = s.probed("pocketsphinx", False, now)
        assert outcome is not None and not outcome.recovered and outcome.next_probe is not None
        waits.append(outcome.cooldown_s)
        assert s.due(outcome.next_probe - timedelta(seconds=1)) == []
        now = outcome.next_probe
    assert waits == [20, 40, 80, 100, 100, 100]
    assert s.dead["pocketsphinx"].probes == 6


def test_a_passing_probe_recovers_the_provider_and_forgets_it() -> None:
    s = RecoverySchedule(Cooldown(first_s=5))
    s.observe({"whisper-tiny.en": Health.DEAD}, T0)
    s.due(at(5))
    s.probed("whisper-tiny.en", False, at(6))
    s.due(at(16))
    outcome = s.probed("whisper-tiny.en", True, at(17))
    assert outcome is not None and outcome.recovered and outcome.probes == 2
    assert outcome.dead_for_s == 17 and "whisper-tiny.en" not in s.dead
    assert s.probed("whisper-tiny.en", True, at(18)) is None  # nothing tracked: nothing to do


def test_a_provider_healthy_again_by_other_means_is_forgotten() -> None:
    s = RecoverySchedule()
    s.observe({"whisper-base": Health.DEAD, "pocketsphinx": Health.DEAD}, T0)
    s.observe({"whisper-base": Health.HEALTHY, "pocketsphinx": Health.DEAD}, at(3))  # pool restart
    assert list(s.dead) == ["pocketsphinx"]
    s.observe({"whisper-base": Health.DEGRADED}, at(4))  # degraded is routable: nothing to probe
    assert list(s.dead) == ["pocketsphinx"]


def test_a_cap_below_the_first_cooldown_is_refused_with_the_keys() -> None:
    with pytest.raises(ValidationError, match="cap_s"):
        Cooldown(first_s=60, cap_s=30)
    with pytest.raises(ValidationError):
        Cooldown(first_s=0)


class FlakyProbe:
    """A provider that fails its first `failures` probes, then works."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("model file missing")


def test_recovery_loop_marks_healthy_after_failed_probes_and_logs_recovery_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="appliance.voice.provider_recovery")
    registry = ProviderRegistry(BUILTIN)
    registry.mark("pocketsphinx", Health.DEAD, T0, "provider_unavailable")
    now = [T0]
    probe = FlakyProbe(failures=2)
    loop = ProviderRecovery(registry, {"pocketsphinx": probe}, Cooldown(first_s=10, cap_s=60),
                            clock=lambda: now[0])
    seen = []
    for t in (0, 9, 10, 29, 30, 69, 70, 71, 500):
        now[0] = at(t)
        seen += [(t, o.recovered) for o in asyncio.run(loop.step())]
    assert seen == [(10, False), (30, False), (70, True)] and probe.calls == 3
    assert registry.health["pocketsphinx"].state is Health.HEALTHY
    assert registry.health["pocketsphinx"].since == at(70)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("provider recovered") == 1 and messages.count("provider still dead") == 2
    [recovered] = [r for r in caplog.records if r.getMessage() == "provider recovered"]
    assert recovered.fields == {"provider": "pocketsphinx", "probes": 3, "dead_for_s": 70}  # type: ignore[attr-defined]


def test_a_probe_that_hangs_counts_as_failed() -> None:
    registry = ProviderRegistry(BUILTIN)
    registry.mark("piper-joe", Health.DEAD, T0, "synth failed")

    def hangs() -> None:  # a model load that never answers, as far as the loop waits
        time.sleep(0.5)

    loop = ProviderRecovery(registry, {"piper-joe": hangs}, Cooldown(first_s=1),
                            clock=lambda: at(5), probe_timeout_s=0.01)
    loop.schedule.observe({"piper-joe": Health.DEAD}, T0)
    [outcome] = asyncio.run(loop.step())
    assert not outcome.recovered and registry.health["piper-joe"].state is Health.DEAD
    assert outcome.cooldown_s == 2


def test_every_asr_and_tts_provider_gets_a_probe_but_the_rule_nlu_none() -> None:
    class Voice:
        def sentences(self, text: str) -> list[object]:
            return []

        def load(self) -> None:
            return None

    assert sorted(probes_for(ProviderRegistry(BUILTIN), None, None)) == []
    probes = probes_for(ProviderRegistry(BUILTIN), AsrPool(set()), Voice())  # type: ignore[arg-type]
    assert sorted(probes) == ["piper-joe", "pocketsphinx", "whisper-base", "whisper-tiny.en"]
    with pytest.raises(RuntimeError, match="no audio"):
        probes["piper-joe"]()
