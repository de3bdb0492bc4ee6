"""TTS usage over a real SIP call: the seconds of Piper speech the agent spoke are added to
the call's session row at the provider's rate, and summed into the day's Health usage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions, day_usage
from appliance.voice.asr_whisper import Transcript
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.providers import BUILTIN, ProviderKind, ProviderRegistry
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.tts_piper import TELEPHONE_RATE, PiperTts
from blueprints.engine import compose_builtin
from tests.integration.sip_phone import answered_call, eventually, run

TTS_CENTS_PER_S = 0.05


class Silence:
    """The caller never speaks here; an ASR engine that would hear nothing."""

    def transcribe(self, audio: np.ndarray, hints: str = "") -> Transcript:
        return Transcript(text="", confidence=0.0, audio_ms=len(audio) // 8)


def tts_usage(sessions: CallSessions, call_id: str) -> dict[str, object] | None:
    record = sessions.get(call_id)
    found = [u for u in (record.usage if record else []) if u["kind"] == "tts"]
    return found[0] if found else None


def test_a_calls_session_row_carries_the_seconds_piper_spoke(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    sessions = CallSessions(store)
    blueprint = compose_builtin("restaurant_orders", "demo_pizza")
    priced = tuple(d.model_copy(update={"cost_per_audio_s": TTS_CENTS_PER_S})
                   if d.kind is ProviderKind.TTS else d for d in BUILTIN)
    deps = VoiceDeps(blueprint=blueprint, asr=Silence(), tts=PiperTts(), store=store,  # type: ignore[arg-type]
                     tools=OrderTools(store, blueprint, "ten_t", "dev_t"), tenant_id="ten_t",
                     device_id="dev_t", sessions=sessions, providers=ProviderRegistry(priced))
    calls: list[CallSession] = []

    async def handler(call: CallInfo, media: MediaChannel) -> None:
        calls.append(CallSession(deps, call, media))
        await calls[-1].run()

    async def scenario(agent: SipAgent) -> None:
        phone, ours, ok = await answered_call(agent.port)
        def spoke() -> bool:
            usage = tts_usage(sessions, calls[0].call.call_id) if calls else None
            return usage is not None and bool(usage["seconds"])

        assert await eventually(spoke, timeout=20)  # the greeting is synthesised and queued
        phone.send(phone.request("BYE", cseq=2, branch="z9hG4bKbye", to_tag=ok.to_addr.tag))
        assert await eventually(lambda: agent.active_calls == 0, timeout=5)
        ours.close()
        phone.close()

    try:
        run(scenario, handler, timeout=60, t1=0.1)
        call_id = calls[0].call.call_id
        spoken = [t.text for t in store.turns(call_id) if t.speaker == "agent"]
        assert spoken == [blueprint.prompt("greeting")]
        audio = deps.cached_speech(spoken[0])  # what Piper made of it, kept for the next call
        assert audio is not None
        expected = sum(len(a) for a in audio) / TELEPHONE_RATE
        usage = tts_usage(sessions, call_id)
        assert usage is not None and usage["provider"] == "piper-joe"
        assert expected > 1.0 and abs(float(usage["seconds"]) - expected) < 1e-6  # type: ignore[arg-type]
        assert abs(float(usage["est_cost_cents"]) - expected * TTS_CENTS_PER_S) < 1e-6  # type: ignore[arg-type]
        record = sessions.get(call_id)
        assert record is not None
        with store.transaction() as conn:
            day = day_usage(conn, record.started_at.date())
        assert [(u.kind, u.seconds) for u in day if u.kind == "tts"] == [("tts", round(expected, 3))]
    finally:
        sessions.close()
        store.close()
