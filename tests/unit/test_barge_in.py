"""BargeInDetector: frames in, decision out; sensitivity mapping and the echo guard."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.voice.barge_in import BargeInConfig, BargeInDetector, frame_db, speech_level_db

RNG = np.random.default_rng(7)


def speech(frames: int, level: float = 6000.0) -> list[np.ndarray]:
    """Syllable-like noise bursts: 80 ms voiced, 20 ms quieter, like speech at ~-17 dBFS."""
    out = []
    for i in range(frames):
        gain = level if i % 5 else level / 8
        out.append((RNG.standard_normal(160) * gain).clip(-32768, 32767).astype(np.int16))
    return out


def silence(frames: int, level: float = 30.0) -> list[np.ndarray]:
    return [(RNG.standard_normal(160) * level).astype(np.int16) for _ in range(frames)]


def detector(sensitivity: float = 0.5) -> BargeInDetector:
    det = BargeInDetector(BargeInConfig.from_sensitivity(sensitivity))
    for frame in silence(50):  # the caller's line while the agent was quiet
        det.feed(frame, agent_playing=False)
    return det


def first_trigger(det: BargeInDetector, frames: list[np.ndarray]) -> int | None:
    for i, frame in enumerate(frames):
        if det.feed(frame, agent_playing=True):
            return i
    return None


def test_sensitivity_maps_to_frames_and_margins() -> None:
    never, mid, most = (BargeInConfig.from_sensitivity(s) for s in (0.0, 0.5, 1.0))
    assert not never.enabled and mid.enabled and most.enabled
    assert most.speech_frames == 3 and mid.speech_frames == 9 and never.speech_frames == 15
    assert most.over_noise_db < mid.over_noise_db < never.over_noise_db
    assert most.min_speech_db < mid.min_speech_db
    assert mid.window_frames > mid.speech_frames


def test_speech_over_the_agent_triggers_after_the_configured_frames() -> None:
    det = detector(0.5)
    det.start_prompt(-18.0)
    hit = first_trigger(det, silence(20) + speech(40))
    assert hit is not None and 20 + 8 <= hit <= 20 + 14  # ~9 speech frames: under 300 ms
    assert len(det.onset()) >= 10  # pre-roll for the endpointer


def test_more_sensitive_triggers_sooner_and_zero_never() -> None:
    fast, slow = detector(1.0), detector(0.2)
    for det in (fast, slow):
        det.start_prompt(-18.0)
    frames = speech(60)
    assert first_trigger(fast, frames) < first_trigger(slow, frames)  # type: ignore[operator]
    never = detector(0.0)
    never.start_prompt(-18.0)
    assert first_trigger(never, speech(200, level=20000)) is None


def test_nothing_happens_while_the_agent_is_silent() -> None:
    det = detector(1.0)
    assert not any(det.feed(f, agent_playing=False) for f in speech(100))


def test_line_noise_and_clicks_do_not_interrupt() -> None:
    det = detector(1.0)
    det.start_prompt(-18.0)
    noisy = silence(100, level=300) + speech(2) + silence(30, level=300) + speech(1)
    assert first_trigger(det, noisy) is None


def test_echo_of_the_agent_prompt_does_not_interrupt() -> None:
    """A real ATA returns the prompt attenuated by its echo return loss (12 dB assumed)."""
    prompt = np.concatenate(speech(200))
    det = detector(1.0)
    det.start_prompt(speech_level_db(prompt))
    echo = (prompt.astype(np.float64) * 10 ** (-12 / 20)).astype(np.int16)
    frames = [echo[i:i + 160] for i in range(0, len(echo), 160)]
    assert first_trigger(det, frames) is None
    talk = [(f.astype(np.int32) + s).clip(-32768, 32767).astype(np.int16)  # caller over the echo
            for f, s in zip(frames, speech(200, level=9000), strict=True)]
    assert first_trigger(det, talk) is not None


def test_levels() -> None:
    assert frame_db(np.zeros(160, dtype=np.int16)) == pytest.approx(-90.3, abs=0.1)
    assert frame_db(np.full(160, 32767, dtype=np.int16)) == pytest.approx(0.0, abs=0.01)
    assert speech_level_db(np.zeros(8000, dtype=np.int16)) == -90.0
