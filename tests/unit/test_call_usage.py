"""A call's provider use is recorded with its session and summed per UTC day into Health."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions, day_usage
from appliance.voice.asr_whisper import Transcript
from appliance.voice.call_routing import CallRouting
from appliance.voice.providers import ProviderDescriptor, ProviderKind, ProviderRegistry
from appliance.voice.routing import SessionFacts
from sync.contracts.messages import Health, ProviderUsage

DAY = date(2026, 11, 25)
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PROVIDERS = (
    ProviderDescriptor(name="asr-a", kind=ProviderKind.ASR, languages=["en"], rtf=0.1,
                       latency_ms=100, quality=0.9, noise_robustness=0.5, cost_per_audio_s=0.5),
    ProviderDescriptor(name="tts-a", kind=ProviderKind.TTS, languages=["en"], rtf=0.1,
                       latency_ms=50, quality=0.9, noise_robustness=1.0),
    ProviderDescriptor(name="nlu-a", kind=ProviderKind.NLU, languages=["en"], rtf=0.0,
                       latency_ms=2, quality=0.9, noise_robustness=1.0),
)


class _Heard:
    """An ASR engine that hears the same words every time (the protocol, nothing patched)."""

    def load(self) -> None:
        return None

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "") -> Transcript:
        return Transcript(text="a pizza", confidence=0.9, audio_ms=len(pcm8k) // 8)


def _call(sessions: CallSessions, call_id: str, at: datetime, seconds: list[float]) -> None:
    routing = CallRouting(call_id=call_id, tenant_id="ten_x", device_id="dev_x",
                          facts=SessionFacts(), providers=ProviderRegistry(PROVIDERS),
                          resolve=lambda _name: _Heard(), sessions=sessions, clock=lambda: at)
    for s in seconds:
        routing.asr.transcribe(np.zeros(int(s * 8000), dtype=np.int16))
    routing.asr.transcribe(np.zeros(8000, dtype=np.int16), speculative=True)  # not counted


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "box.sqlite3")


def test_call_usage_is_summed_per_day_into_health(store: LocalStore) -> None:
    sessions = CallSessions(store)
    try:
        _call(sessions, "call-1", T0, [2.0, 1.5])
        _call(sessions, "call-2", T0 + timedelta(hours=1), [0.5])
        _call(sessions, "call-3", T0 + timedelta(days=1), [9.0])  # another day
        record = sessions.get("call-1")
        assert record is not None
        assert {(u["provider"], u["seconds"]) for u in record.usage} == {
            ("asr-a", 3.5), ("tts-a", 0.0), ("nlu-a", 0.0)}
    finally:
        sessions.close()
    with store.transaction() as conn:
        usage = day_usage(conn, DAY)
    health = Health(tenant_id="ten_x", device_id="dev_x", at=T0, outbox_depth=0,
                    firmware="test", usage=usage)
    wire = Health.model_validate_json(health.model_dump_json())
    assert wire.usage == [
        ProviderUsage(day=DAY, provider="asr-a", kind="asr", seconds=4.0, est_cost_cents=2.0),
        ProviderUsage(day=DAY, provider="nlu-a", kind="nlu"),
        ProviderUsage(day=DAY, provider="tts-a", kind="tts"),
    ]


def test_bad_usage_is_refused(store: LocalStore) -> None:
    sessions = CallSessions(store)
    try:
        sid = sessions.open(call_id="call-9", tenant_id="ten_x", device_id="dev_x", routing={},
                            now=T0).session_id
        with pytest.raises(ValueError):
            sessions.add_usage(sid, provider="asr-a", kind="asr", seconds=-1.0, now=T0)
        with pytest.raises(KeyError):
            sessions.add_usage("ses_01JDEM00000000000000000000", provider="asr-a", kind="asr",
                               seconds=1.0, now=T0)
    finally:
        sessions.close()


def test_tts_seconds_are_priced_and_a_lost_session_never_raises(store: LocalStore) -> None:
    priced = tuple(d.model_copy(update={"cost_per_audio_s": 0.2}) if d.kind is ProviderKind.TTS
                   else d for d in PROVIDERS)
    sessions = CallSessions(store)
    try:
        routing = CallRouting(call_id="call-t", tenant_id="ten_x", device_id="dev_x",
                              facts=SessionFacts(), providers=ProviderRegistry(priced),
                              resolve=lambda _name: _Heard(), sessions=sessions, clock=lambda: T0)
        routing.spoke(2.5)
        routing.spoke(0.0)  # nothing said: nothing added
        record = sessions.get("call-t")
        assert record is not None
        assert [(u["seconds"], u["tokens"], u["est_cost_cents"]) for u in record.usage
                if u["kind"] == "tts"] == [(2.5, 0, 0.5)]
        assert [u["tokens"] for u in record.usage if u["kind"] == "nlu"] == [0]  # rule engine
        with store.transaction() as conn:
            conn.execute("DELETE FROM call_sessions WHERE call_id = 'call-t'")
        routing.spoke(1.0)  # logged and dropped: usage never stops a call
    finally:
        sessions.close()
