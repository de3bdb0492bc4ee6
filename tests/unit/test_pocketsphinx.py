"""pocketsphinx with a trigram LM built from the tenant's menu, on Piper speech over G.711."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.voice.asr_pocketsphinx import PocketsphinxAsr, build_menu_lm, menu_sentences
from appliance.voice.g711 import ulaw_decode, ulaw_encode
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin
from blueprints.menu import Menu

PHRASE = "A large pepperoni pizza and a garlic bread, please."


@pytest.fixture(scope="module")
def menu() -> Menu:
    m = compose_builtin("restaurant_orders", "demo_pizza").menu
    assert m is not None
    return m


@pytest.fixture(scope="module")
def phone_phrase() -> np.ndarray:
    # Piper samples noise: without it the phrase is the same audio on every run.
    return ulaw_decode(ulaw_encode(PiperTts(vary=False).synthesize(PHRASE)))


def test_lm_comes_from_the_menu_and_is_cached_by_its_hash(menu: Menu, tmp_path: Path) -> None:
    sentences = menu_sentences(menu)
    vocab = {w for s in sentences for w in s.split()}
    assert {"pepperoni", "pizza", "large", "garlic", "bread"} <= vocab
    assert "a large pepperoni pizza and a garlic bread please" not in sentences  # templates only
    first = build_menu_lm(menu, tmp_path)
    arpa = first.lm_path.read_text()
    assert "\\data\\" in arpa and "\\3-grams:" in arpa  # an ARPA trigram model
    stamp = first.lm_path.stat().st_mtime_ns
    again = build_menu_lm(menu, tmp_path)
    assert again == first and again.lm_path.stat().st_mtime_ns == stamp  # reused, not rebuilt
    other = menu.model_copy(update={"items": menu.items[:1]})
    assert build_menu_lm(other, tmp_path).lm_path != first.lm_path  # another menu, another LM
    words = {line.split()[0].split("(")[0] for line in first.dict_path.read_text().splitlines()}
    assert "pepperoni" in words and len(words) < 1000  # the dictionary is cut to the menu


def test_stream_gives_partials_then_menu_words(menu: Menu, phone_phrase: np.ndarray,
                                               tmp_path: Path) -> None:
    asr = PocketsphinxAsr(menu, tmp_path)
    stream = asr.stream()
    partials: list[tuple[int, str]] = []
    for i in range(0, len(phone_phrase) - 159, 160):
        text = stream.feed(phone_phrase[i:i + 160])
        if text is not None:
            partials.append((i, text))
    final = stream.finish()
    assert len(partials) >= 3
    assert partials[0][0] < len(phone_phrase) // 2  # text arrives while the caller speaks
    for word in ("large", "pepperoni", "pizza", "garlic", "bread"):
        assert word in final.text.split()
    assert 0.0 < final.confidence <= 1.0
    assert abs(final.audio_ms - len(phone_phrase) / 8) < 30
    whole = asr.transcribe(phone_phrase)  # the same decoder, reused for a second utterance
    assert "pepperoni" in whole.text.split()
