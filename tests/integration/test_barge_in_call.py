"""Barge-in over real SIP and RTP on 127.0.0.1: the caller talks over a long greeting.

A real SipAgent runs the real CallSession (real blueprint, store and dialog); only speech
is faked (a tone for the agent's voice, a fixed transcript for the caller's), so what is
asserted is timing on the wire and what reached the dialog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from appliance.dialog.order_tools import BoxTools
from appliance.store import LocalStore
from appliance.voice.asr_whisper import Transcript
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from blueprints.engine import compose_builtin
from tests.integration.sip_phone import answered_call, eventually, run, tone
from voxeron.caller_script import frame_dbfs

GREETING_S = 8.0
CALLER_TEXT = "a large pepperoni pizza"


class ToneTts:
    """The agent's voice: a steady tone, 8 s for the greeting so there is time to interrupt."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def load(self) -> None:
        return None

    def sentences(self, text: str) -> Iterator[np.ndarray]:
        yield tone(GREETING_S if text == self.greeting else 1.0, hz=300.0, level=6000.0)


class FixedAsr:
    """The caller's words, whatever the audio; keeps how much audio each utterance had."""

    def __init__(self) -> None:
        self.heard_ms: list[int] = []

    def load(self) -> None:
        return None

    def transcribe(self, audio: np.ndarray, hints: str = "") -> Transcript:
        self.heard_ms.append(len(audio) // 8)
        return Transcript(text=CALLER_TEXT, confidence=0.9, audio_ms=len(audio) // 8)


def caller_speech(seconds: float) -> np.ndarray:
    """Speech-like bursts (a modulated 500 Hz tone) louder than the agent's tone."""
    t = np.arange(int(seconds * 8000)) / 8000
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (np.sin(2 * np.pi * 500 * t) * envelope * 12000).astype(np.int16)


def test_caller_talking_over_the_greeting_stops_it_and_is_understood(tmp_path: Path) -> None:
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    store = LocalStore(tmp_path / "box.sqlite3")
    asr = FixedAsr()
    deps = VoiceDeps(blueprint=bp, asr=asr, tts=ToneTts(bp.prompt("greeting")), store=store,  # type: ignore[arg-type]
                     tools=BoxTools(store, bp, "ten_b", "dev_b"), tenant_id="ten_b", device_id="dev_b")
    sessions: list[CallSession] = []

    async def handler(call: CallInfo, media: MediaChannel) -> None:
        session = CallSession(deps, call, media)
        sessions.append(session)
        await session.run()

    async def scenario(agent: SipAgent) -> None:
        phone, ours, ok = await answered_call(agent.port)
        voiced: list[float] = []  # loop time of every agent frame with sound
        loop = asyncio.get_running_loop()

        async def hear() -> None:
            async for frame in ours.frames():
                if frame_dbfs(frame) > -40:
                    voiced.append(loop.time())

        listener = asyncio.create_task(hear())
        assert await eventually(lambda: len(voiced) >= 50, timeout=5)  # 1 s of greeting heard
        talk_started = loop.time()
        await ours.play(caller_speech(1.2))
        assert await eventually(lambda: any(t.speaker == "caller" for t in store.turns(sessions[0].call.call_id)),
                                timeout=5)
        turns = store.turns(sessions[0].call.call_id)
        greeting_heard = [t for t in voiced if t < talk_started + 1.2]
        assert len(greeting_heard) * 0.02 < GREETING_S / 3  # cut off well before its 8 s
        cut_at = max(greeting_heard)
        assert cut_at - talk_started < 0.6  # stopped within a fraction of a second of speech
        assert sessions[0].interruptions == 1
        assert [t.text for t in turns if t.speaker == "caller"] == [CALLER_TEXT]
        assert asr.heard_ms and asr.heard_ms[0] >= 1100  # the whole line, onset included
        assert await eventually(lambda: len([t for t in store.turns(sessions[0].call.call_id)
                                             if t.speaker == "agent"]) >= 2, timeout=5)
        reply = [t for t in store.turns(sessions[0].call.call_id) if t.speaker == "agent"][1]
        assert "pepperoni" in reply.text.lower()  # the dialog acted on the interruption
        assert await eventually(lambda: any(t > talk_started + 1.3 for t in voiced), timeout=5)
        phone.send(phone.request("BYE", cseq=2, branch="z9hG4bKbye", to_tag=ok.to_addr.tag))
        await phone.expect(200)
        listener.cancel()
        ours.close()
        phone.close()

    try:
        run(scenario, handler, timeout=30)
    finally:
        store.close()
