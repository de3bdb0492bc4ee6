"""Real Piper and real Whisper tiny.en (both from pip packages) through a phone channel."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from appliance.voice.asr_whisper import (
    ModelIntegrityError,
    WhisperAsr,
    bundled_tiny_en,
    verify_model_dir,
)
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tts() -> PiperTts:
    return PiperTts()


def test_piper_speaks_at_telephone_rate(tts: PiperTts) -> None:
    parts = list(tts.sentences("Thanks for calling. What can I get for you?"))
    assert len(parts) == 2  # one chunk per sentence, for streaming playback
    audio = np.concatenate(parts)
    assert audio.dtype == np.int16 and 1.0 < len(audio) / 8000 < 6.0
    assert np.abs(audio).max() > 1000


def test_whisper_understands_an_order_over_g711(tts: PiperTts) -> None:
    from appliance.voice.g711 import ulaw_decode, ulaw_encode

    pcm = tts.synthesize("I'd like a large pepperoni pizza and two cokes please.")
    phone = ulaw_decode(ulaw_encode(pcm))
    asr = WhisperAsr(threads=2)
    hints = compose_builtin("restaurant_orders", "demo_pizza").asr_hints
    text = asr.transcribe(phone, hints).text.lower()
    for word in ("large", "pepperoni", "pizza", "two"):
        assert word in text


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(bundled_tiny_en(), copy)
    verify_model_dir(copy, WhisperAsr().pins)  # intact copy passes
    with (copy / "vocabulary.txt").open("a") as f:
        f.write("tampered\n")
    with pytest.raises(ModelIntegrityError, match="vocabulary.txt"):
        verify_model_dir(copy, WhisperAsr().pins)
