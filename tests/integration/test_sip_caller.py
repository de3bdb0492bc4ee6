"""The scripted caller (voxeron.caller) against a real SipAgent over loopback UDP."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.sip_message import SipParseError
from tests.integration.sip_phone import eventually, idle, run, tone
from voxeron.caller import place_call
from voxeron.caller_script import frame_dbfs


class ToneVoice:
    """Stand-in TTS for the SIP/RTP path only: every line is a 0.4 s tone (Piper is tested elsewhere)."""

    def synthesize(self, text: str) -> np.ndarray:
        return tone(0.4, 600.0)


def test_caller_and_agent_hold_a_conversation(tmp_path: Path) -> None:
    heard: list[int] = []
    callers: list[str] = []

    async def agent_side(call: CallInfo, media: MediaChannel) -> None:
        callers.append(call.caller)
        await media.play(tone(0.5))  # greeting
        for _ in range(2):
            voiced = quiet = 0
            async for frame in media.frames():
                if frame_dbfs(frame) > -40:
                    voiced, quiet = voiced + 1, 0
                elif voiced:
                    quiet += 1
                    if quiet >= 15:  # 300 ms of silence ends the caller's turn
                        break
            heard.append(voiced)
            await media.play(tone(0.3, 500.0))
        # returning hangs up

    events: list[tuple[str, str]] = []

    async def scenario(agent: SipAgent) -> None:
        report = await place_call(f"sip:order@127.0.0.1:{agent.port}", ["one pizza", "that's all"],
                                  tts=ToneVoice(), on_event=lambda k, text, t: events.append((k, text)),
                                  max_call_s=30, wav_path=tmp_path / "agent.wav")
        assert report.status_code == 200 and report.agent_hung_up
        assert [t.caller_text for t in report.turns] == ["one pizza", "that's all"]
        for turn in report.turns:
            assert turn.latency_ms is not None and 250 <= turn.latency_ms < 3000
            assert turn.caller_finished_s - turn.caller_started_s >= 0.3
            assert 200 <= turn.agent_audio_ms <= 600
        assert 400 <= report.greeting_ms <= 800 and report.duration_s > 2.0
        assert [e for e in events if e[0] == "caller_says"] == [("caller_says", "one pizza"),
                                                                 ("caller_says", "that's all")]
        assert ("hangup", "agent") in events
        assert len(heard) == 2 and all(15 <= v <= 30 for v in heard)  # 0.4 s tone = 20 frames
        assert callers == ["5550100"]  # the caller id travels as the From user
        with wave.open(str(tmp_path / "agent.wav")) as w:
            assert w.getframerate() == 8000 and w.getnframes() > 8000
        assert await eventually(lambda: agent.active_calls == 0)

    run(scenario, agent_side)


def test_caller_reports_a_refused_call_and_refuses_host_names() -> None:
    async def scenario(agent: SipAgent) -> None:
        report = await place_call(f"sip:nobody@127.0.0.1:{agent.port}", ["hi"], tts=ToneVoice(), max_call_s=5)
        assert (report.status_code, report.turns, report.agent_hung_up) == (404, [], False)
        with pytest.raises(ValueError, match="IP literal"):
            await place_call("sip:order@phone.example:5060", ["hi"], tts=ToneVoice())
        with pytest.raises(SipParseError):
            await place_call("tel:+15551234", ["hi"], tts=ToneVoice())

    run(scenario, idle)
