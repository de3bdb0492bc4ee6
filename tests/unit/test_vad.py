"""WebRTC VAD (from its wheel) driving the Endpointer on real Piper speech over G.711."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.voice.endpointing import EndpointConfig, Endpointer, GatedVad
from appliance.voice.g711 import ulaw_decode, ulaw_encode
from appliance.voice.tts_piper import PiperTts
from appliance.voice.vad import WebRtcVad

RATE = 8000


@pytest.fixture(scope="module")
def phrase() -> np.ndarray:
    return PiperTts().synthesize("A large pepperoni pizza please.")


def _line(speech: np.ndarray, lead_s: float, tail_s: float, hiss: float, seed: int = 0) -> np.ndarray:
    """Speech with silence around it, white hiss of std `hiss` mixed under all, through G.711."""
    clean = np.concatenate([np.zeros(int(lead_s * RATE)), speech, np.zeros(int(tail_s * RATE))])
    noise = np.random.default_rng(seed).standard_normal(len(clean)) * hiss
    return ulaw_decode(ulaw_encode(np.clip(clean + noise, -32768, 32767).astype(np.int16)))


def _frames(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i:i + 160] for i in range(0, len(audio) - 159, 160)]


@pytest.mark.parametrize("hiss", [30.0, 300.0])  # about -61 and -41 dBFS of line noise
@pytest.mark.parametrize("aggressiveness", [0, 2, 3])
def test_finds_start_and_end_of_speech(phrase: np.ndarray, hiss: float, aggressiveness: int) -> None:
    ep = Endpointer(EndpointConfig(end_silence_ms=600, vad_aggressiveness=aggressiveness))
    audio = _line(phrase, 1.0, 2.0, hiss)
    ended = [(i, u) for i, f in enumerate(_frames(audio)) if (u := ep.feed(f)) is not None]
    assert len(ended) == 1
    at, utt = ended[0]
    speech_s = len(phrase) / RATE
    assert 1.0 + speech_s <= at * 0.02 <= 1.0 + speech_s + 0.7  # closed by the hangover
    assert 0.5 * speech_s * 1000 <= utt.speech_ms <= speech_s * 1000 + 100
    assert len(utt.audio) / RATE < speech_s + 0.6 + 0.3  # no leading second of line noise


@pytest.mark.parametrize("hiss", [3.0, 10.0, 30.0, 100.0])  # comfort noise up to -50 dBFS
@pytest.mark.parametrize("aggressiveness", [0, 2])
def test_hiss_alone_never_opens_an_utterance(hiss: float, aggressiveness: int) -> None:
    ep = Endpointer(EndpointConfig(vad_aggressiveness=aggressiveness))
    for f in _frames(_line(np.zeros(0), 0.0, 5.0, hiss, seed=int(hiss))):
        assert ep.feed(f) is None
        assert not ep.in_speech


def test_plain_webrtc_classifies_speech_and_rejects_silence(phrase: np.ndarray) -> None:
    vad = WebRtcVad(2)
    speech = [vad.is_speech(f) for f in _frames(_line(phrase, 0, 0, 30.0))]
    assert sum(speech) > 0.6 * len(speech)
    gated = GatedVad(WebRtcVad(2))
    assert not any(gated.is_speech(f) for f in _frames(_line(np.zeros(0), 0, 2.0, 30.0)))


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="aggressiveness must be 0, 1, 2 or 3"):
        WebRtcVad(5)
    with pytest.raises(ValueError, match="20 ms frames of 160 samples"):
        WebRtcVad(1).is_speech(np.zeros(320, dtype=np.int16))
