"""The Endpointer as a pure state machine: driven by an energy classifier on synthetic tones
and by explicit speech decisions (the WebRTC VAD on real speech is in test_vad.py)."""

import numpy as np

from appliance.voice.endpointing import EndpointConfig, Endpointer, EnergyVad, GatedVad

RATE = 8000


def _frames(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i:i + 160] for i in range(0, len(audio) - 159, 160)]


def _tone(seconds: float, amp: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def _silence(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(0, 30, int(seconds * RATE)).astype(np.int16)


def _energy(cfg: EndpointConfig | None = None) -> Endpointer:
    return Endpointer(cfg or EndpointConfig(), classifier=EnergyVad())


def _decide(ep: Endpointer, pattern: str) -> list[int]:
    """Feed '1' (speech) / '.' (silence) decisions; the speech_ms of each utterance out."""
    frame = np.zeros(160, dtype=np.int16)
    return [u.speech_ms for c in pattern if (u := ep.feed(frame, speech=c == "1")) is not None]


def test_one_utterance_after_trailing_silence() -> None:
    ep = _energy(EndpointConfig(end_silence_ms=600))
    audio = np.concatenate([_silence(1.0), _tone(1.0), _silence(1.0)])
    out = [u for f in _frames(audio) if (u := ep.feed(f)) is not None]
    assert len(out) == 1
    assert 900 <= out[0].speech_ms <= 1100
    # pre-roll + speech + hangover, not the leading second of silence
    assert len(out[0].audio) < 2.0 * RATE


def test_short_pause_does_not_split() -> None:
    ep = _energy(EndpointConfig(end_silence_ms=600))
    audio = np.concatenate([_tone(0.5), _silence(0.3), _tone(0.5), _silence(1.0)])
    out = [u for f in _frames(audio) if (u := ep.feed(f)) is not None]
    assert len(out) == 1


def test_noise_alone_never_triggers() -> None:
    for ep in (_energy(), Endpointer()):  # energy alone, and the default (WebRTC, gated)
        assert all(ep.feed(f) is None for f in _frames(_silence(3.0)))
        assert not ep.in_speech


def test_max_length_cuts_a_monologue() -> None:
    ep = _energy(EndpointConfig(max_utterance_ms=2000))
    out = [u for f in _frames(_tone(5.0)) if (u := ep.feed(f)) is not None]
    assert len(out) == 2


def test_decisions_drive_start_hangover_and_end() -> None:
    ep = Endpointer(EndpointConfig(start_frames=3, end_silence_ms=100, min_speech_ms=0))
    assert _decide(ep, "11.1.") == []  # fewer than three in a row do not open an utterance
    assert not ep.in_speech
    assert _decide(ep, "111") == [] and ep.in_speech
    assert _decide(ep, "....") == [] and ep.in_speech  # 80 ms of silence: still inside
    assert _decide(ep, ".") == [60]  # the fifth silent frame (100 ms) closes it
    assert not ep.in_speech


def test_single_frame_blips_do_not_hold_an_utterance_open() -> None:
    ep = Endpointer(EndpointConfig(end_silence_ms=200, min_speech_ms=0, resume_frames=2))
    out = _decide(ep, "11111" + "....1" * 3)  # a blip every 100 ms: the pause goes on
    assert out == [5 * 20 + 2 * 20]  # closed at the third blip, 200 ms of pause counted
    ep = Endpointer(EndpointConfig(end_silence_ms=200, min_speech_ms=0, resume_frames=2))
    assert _decide(ep, "11111" + "...11" * 3 + "." * 10) == [5 * 20 + 6 * 20]  # real resumes


def test_too_little_speech_is_dropped() -> None:
    ep = Endpointer(EndpointConfig(start_frames=2, end_silence_ms=100, min_speech_ms=100))
    assert _decide(ep, "111......") == []  # 60 ms: a click
    assert _decide(ep, "11111......") == [100]


def test_gated_vad_learns_the_line_first() -> None:
    class Always:
        def is_speech(self, frame: np.ndarray) -> bool:
            return True

    gate = GatedVad(Always())
    hiss = _frames(_silence(1.0))
    assert not any(gate.is_speech(f) for f in hiss)  # voiced says yes, but it is the floor
    assert all(gate.is_speech(f) for f in _frames(_tone(0.2)))
