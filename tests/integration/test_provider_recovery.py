"""A dead in-process provider comes back: pocketsphinx (in the voice process) cannot load
because its cache dir is broken, a call fails over from it and marks it dead, probes fail
while it stays broken, and once the dir is repaired a probe passes and routing uses it again.

Real parts only: pocketsphinx in-process, Whisper tiny.en in its worker process, a Piper
caller line, the recovery loop on the real clock (short cool-downs)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.voice.asr_pool import AsrPool
from appliance.voice.call_routing import CallRouting, session_facts
from appliance.voice.provider_recovery import ProviderRecovery, probes_for
from appliance.voice.providers import BUILTIN, Health, ProviderRegistry
from appliance.voice.recovery_schedule import Cooldown
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin
from tests.integration.sip_phone import eventually

pytestmark = pytest.mark.slow


def now() -> datetime:
    return datetime.now(UTC)


def test_broken_in_process_engine_is_probed_back_to_health(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="appliance.voice")
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    tts = PiperTts(vary=False)
    audio = tts.synthesize("A large pepperoni pizza, please.")
    cache = tmp_path / "models"
    cache.write_text("not a directory")  # pocketsphinx cannot write its menu LM here
    providers = ProviderRegistry(BUILTIN)
    pool = AsrPool({"whisper-tiny.en", "whisper-base"}, cache_dir=cache, menu=bp.menu)

    def call(n: int) -> CallRouting:
        return CallRouting(call_id=f"call-{n}", tenant_id="ten_r", device_id="dev_r",
                           facts=session_facts(bp, {"tier": "basic"}, "pocketsphinx"),
                           providers=providers, resolve=pool.get, sessions=None, clock=now)

    recovery = ProviderRecovery(providers, probes_for(providers, pool, tts),
                                Cooldown(first_s=0.2, factor=2, cap_s=0.8))

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(recovery.run(stop, tick_s=0.05))
        try:
            first = call(1)
            assert first.decision.asr[:2] == ["pocketsphinx", "whisper-tiny.en"]
            heard = await asyncio.to_thread(first.asr.transcribe, audio)
            assert "pepperoni" in heard.text.lower()  # tiny decoded the turn after the failover
            assert [(f.from_provider, f.to_provider) for f in first.failovers] == [
                ("pocketsphinx", "whisper-tiny.en")]
            assert providers.health["pocketsphinx"].state is Health.DEAD
            assert "provider_unavailable" in first.failovers[0].error
            assert call(2).decision.asr[0] == "whisper-tiny.en"  # dead: not routed to

            def probed_twice() -> bool:
                dead = recovery.schedule.dead.get("pocketsphinx")
                return dead is not None and dead.probes >= 2
            assert await eventually(probed_twice, timeout=60)
            assert recovery.schedule.dead["pocketsphinx"].cooldown_s >= 0.8  # 0.2 doubled twice
            assert providers.health["pocketsphinx"].state is Health.DEAD  # still broken

            cache.unlink()  # the operator repairs the model dir
            cache.mkdir()
            assert await eventually(
                lambda: providers.health["pocketsphinx"].state is Health.HEALTHY, timeout=60)
        finally:
            stop.set()
            await loop

        again = call(3)
        assert again.decision.asr[0] == "pocketsphinx"
        await asyncio.to_thread(again.asr.transcribe, audio)
        assert again.failovers == [] and again.asr.current == "pocketsphinx"

    try:
        asyncio.run(scenario())
    finally:
        pool.stop()
    messages = [(r.getMessage(), getattr(r, "fields", {}).get("provider")) for r in caplog.records]
    assert messages.count(("provider recovered", "pocketsphinx")) == 1
    assert messages.count(("provider still dead", "pocketsphinx")) >= 2
    assert ("provider still dead", "whisper-tiny.en") not in messages  # never dead, never probed
