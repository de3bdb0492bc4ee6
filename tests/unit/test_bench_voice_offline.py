"""The offline spoken-order loop (benchmarks/voice.py) and the menu prompt it gives Whisper.

Real flite, real sox noise, real Whisper tiny.en and the real PIZZA catalogs: nothing under
test is replaced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.voice.asr_prompt import MAX_PROMPT_CHARS, menu_phrases, menu_prompt
from appliance.voice.asr_whisper import PROMPT_TOKENS, WhisperAsr
from benchmarks import voice
from benchmarks.caller_audio import NoiseBed
from benchmarks.nlu import DEFAULT_CATALOGS
from blueprints.catalog_import import pizza_menu
from blueprints.menu import Menu


@pytest.fixture(scope="module")
def menu() -> Menu:
    return pizza_menu(DEFAULT_CATALOGS.resolve())


def test_menu_prompt_puts_sizes_and_items_first_and_says_each_word_once(menu: Menu) -> None:
    prompt = menu_prompt(menu)
    assert prompt.startswith("Order: small, medium, large") and len(prompt) <= MAX_PROMPT_CHARS
    assert prompt.endswith(". No, that's all. Yes.")  # whole sentences, however long the menu
    phrases = menu_phrases(menu)
    # one-word names (plain toppings) before qualified ones, sizes and styles before dishes
    assert phrases.index("vegan") < phrases.index("pizza") < phrases.index("mushroom")
    assert phrases.index("mushroom") < phrases.index("thin crust") < phrases.index("kalamata olive")
    assert "party sized" in phrases  # catalog spacing ('party - sized') is not read out
    # 'roasted red pepper' brings no word that 'roasted chicken' and 'red peppers' did not
    assert "roasted red pepper" not in phrases and "roasted chicken" in phrases
    assert phrases[-1] not in prompt  # the menu has more than fits: the least useful goes


def test_whisper_keeps_the_head_of_an_overlong_prompt(menu: Menu) -> None:
    asr = WhisperAsr(threads=1)
    long_prompt = ", ".join(menu_phrases(menu)) * 3
    tokens = asr._prompt_tokens(long_prompt)
    assert tokens is not None and len(tokens) == PROMPT_TOKENS
    head = asr._model.hf_tokenizer.decode(tokens)
    assert head.strip().startswith("small, medium, large")
    assert asr._prompt_tokens("") is None
    full = asr._model.hf_tokenizer.encode(" " + menu_prompt(menu), add_special_tokens=False).ids
    assert len(full) <= PROMPT_TOKENS  # the menu prompt itself is never cut


def test_noise_falls_on_an_even_share_and_padding_matches_the_endpointer() -> None:
    assert [voice.noisy_at(i, 0.3) for i in range(10)].count(True) == 3
    assert not any(voice.noisy_at(i, 0.0) for i in range(10))
    line = np.full(800, 1000, dtype=np.int16)
    clean = voice.endpointed(line, None, 0)
    pre, tail = int(voice.PRE_ROLL_S * voice.RATE), int(voice.END_SILENCE_S * voice.RATE)
    assert len(clean) == pre + 800 + tail and not clean[:pre].any() and not clean[-tail:].any()
    noisy = voice.endpointed(line, NoiseBed.kitchen(15.0), 3)
    assert len(noisy) == len(clean) and np.abs(noisy[:pre]).max() > 0


def test_cells_add_up_to_the_per_engine_total() -> None:
    a, b = voice.AsrRun(), voice.AsrRun()
    a.tally.add("two large pizzas", "two large pizzas")
    b.tally.add("a coke", "a cook")
    a.right, b.right = [True], [False]
    a.orders, b.orders = {True: 1, False: 1}, {True: 0, False: 0}
    a.hyps, b.hyps = ["two large pizzas"], ["a cook"]
    total = voice.AsrRun()
    total.merge(a)
    total.merge(b)
    assert total.tally.utterances == 2 and total.tally.edits == 1 and total.orders[True] == 1


@pytest.mark.parametrize("args, message", [
    (["--voices", "nobody"], "unknown voices"),
    (["--engines", "large"], "unknown engines"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--noise-share", "2"], "--noise-share must be between 0 and 1"),
])
def test_bad_options_are_named(args: list[str], message: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        voice.main(args)
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_offline_loop_prints_spoken_order_exact_per_voice_and_engine(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "dev.jsonl"
    data.write_text(
        '{"dev.SRC": "two large pizzas with ham", "dev.EXR": "(ORDER (PIZZAORDER (NUMBER 2 ) '
        '(SIZE LARGE ) (TOPPING HAM ) ) )"}\n')
    out = tmp_path / "t.jsonl"
    assert voice.main(["--limit", "1", "--voices", "flite-rms", "--engines", "tiny",
                       "--noise-share", "0", "--data", str(data), "--transcripts", str(out),
                       "--audio-cache", str(tmp_path / "audio")]) == 0
    table = capsys.readouterr().out
    assert "flite-rms        tiny   menu" in table and "ALL voices" in table
    assert "text ceiling (parse of the reference text): 1/1 = 100.0%" in table
    row = out.read_text()
    assert '"voice": "flite-rms"' in row and '"order_exact": ' in row
