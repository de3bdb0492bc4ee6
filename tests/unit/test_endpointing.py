import numpy as np

from appliance.voice.endpointing import EndpointConfig, Endpointer

RATE = 8000


def _frames(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i:i + 160] for i in range(0, len(audio) - 159, 160)]


def _tone(seconds: float, amp: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def _silence(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(0, 30, int(seconds * RATE)).astype(np.int16)


def test_one_utterance_after_trailing_silence() -> None:
    ep = Endpointer(EndpointConfig(end_silence_ms=600))
    audio = np.concatenate([_silence(1.0), _tone(1.0), _silence(1.0)])
    out = [u for f in _frames(audio) if (u := ep.feed(f)) is not None]
    assert len(out) == 1
    assert 900 <= out[0].speech_ms <= 1100
    # pre-roll + speech + hangover, not the leading second of silence
    assert len(out[0].audio) < 2.0 * RATE


def test_short_pause_does_not_split() -> None:
    ep = Endpointer(EndpointConfig(end_silence_ms=600))
    audio = np.concatenate([_tone(0.5), _silence(0.3), _tone(0.5), _silence(1.0)])
    out = [u for f in _frames(audio) if (u := ep.feed(f)) is not None]
    assert len(out) == 1


def test_noise_alone_never_triggers() -> None:
    ep = Endpointer()
    assert all(ep.feed(f) is None for f in _frames(_silence(3.0)))
    assert not ep.in_speech


def test_max_length_cuts_a_monologue() -> None:
    ep = Endpointer(EndpointConfig(max_utterance_ms=2000))
    out = [u for f in _frames(_tone(5.0)) if (u := ep.feed(f)) is not None]
    assert len(out) == 2
