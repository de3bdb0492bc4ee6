"""Real SIP calls: the seconds of Piper speech the agent spoke are added to the call's
session row at the provider's rate (and into the day's Health usage), and a tenant that keeps
no transcripts gets none in the log either."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from appliance.desired_blueprint import DesiredComposer
from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore, desired_state
from appliance.store.call_sessions import CallSessions, day_usage
from appliance.voice.asr_whisper import Transcript
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.providers import BUILTIN, ProviderKind, ProviderRegistry
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.tts_piper import TELEPHONE_RATE, PiperTts
from blueprints.engine import compose_builtin
from sync.contracts.messages import DesiredState, TenantPolicy
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


def test_where_no_transcripts_are_kept_the_log_does_not_keep_them_either(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """transcripts_days=0 in force: no turn is stored, and the "agent says" line carries a
    placeholder, not the words (the log must not become the transcript store)."""
    store = LocalStore(tmp_path / "box.sqlite3")
    desired = DesiredState(tenant_id="ten_t", device_id="dev_t", version=1,
                           issued_at=datetime.now(UTC), policy=TenantPolicy(transcripts_days=0))
    with store.transaction() as conn:
        assert desired_state.apply(conn, desired, DesiredComposer().blueprint_hash(desired),
                                   datetime.now(UTC)) == "applied"
    blueprint = compose_builtin("restaurant_orders", "demo_pizza")
    deps = VoiceDeps(blueprint=blueprint, asr=Silence(), tts=PiperTts(), store=store,  # type: ignore[arg-type]
                     tools=OrderTools(store, blueprint, "ten_t", "dev_t"), tenant_id="ten_t",
                     device_id="dev_t")
    calls: list[CallSession] = []
    caplog.set_level(logging.INFO, logger="appliance.voice.call_session")

    async def handler(call: CallInfo, media: MediaChannel) -> None:
        calls.append(CallSession(deps, call, media))
        await calls[-1].run()

    def said() -> list[dict[str, object]]:
        return [r.fields for r in caplog.records  # type: ignore[attr-defined]
                if r.getMessage() == "agent says"]

    async def scenario(agent: SipAgent) -> None:
        phone, ours, ok = await answered_call(agent.port)
        assert await eventually(lambda: bool(said()), timeout=20)  # the greeting was spoken
        phone.send(phone.request("BYE", cseq=2, branch="z9hG4bKbye", to_tag=ok.to_addr.tag))
        assert await eventually(lambda: agent.active_calls == 0, timeout=5)
        ours.close()
        phone.close()

    try:
        run(scenario, handler, timeout=60, t1=0.1)
        greeting = blueprint.prompt("greeting")
        assert store.turns(calls[0].call.call_id) == []
        first = said()[0]
        assert first["prompt"] == "greeting"
        assert first["text"] == f"[not kept: {len(greeting)} chars]"
        assert all(greeting not in r.getMessage() + str(getattr(r, "fields", ""))
                   for r in caplog.records)
    finally:
        store.close()
