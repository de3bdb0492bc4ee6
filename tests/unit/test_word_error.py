from __future__ import annotations

import pytest

from benchmarks.word_error import WerTally, normalise, number_words, word_edits


@pytest.mark.parametrize(("n", "words"), [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty two"),
    (100, "one hundred"), (124, "one hundred twenty four"),
    (2005, "two thousand five"), (1_000_000, "one million"),
])
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words.split()


def test_normalise_case_punctuation_and_digits() -> None:
    assert normalise("I'd like 2 Large pizzas, please!") == \
        "id like two large pizzas please".split()
    assert normalise("That's $12.50 - thanks.") == \
        "thats twelve point fifty thanks".split()
    assert normalise("1,000 wings") == ["one", "thousand", "wings"]
    assert normalise("pick-up") == ["pick", "up"]
    assert normalise("  ...  ") == []


@pytest.mark.parametrize(("ref", "hyp", "edits"), [
    ("a b c", "a b c", 0),
    ("a b c", "a x c", 1),          # substitution
    ("a b c", "a c", 1),            # deletion
    ("a b c", "a b c d", 1),        # insertion
    ("a b c", "", 3),
    ("", "a b", 2),
    ("large pizza with tuna", "large pizza with tune a", 2),  # sub + ins
    ("a b c d", "b c d a", 2),      # rotation: delete + insert, not four substitutions
])
def test_word_edits(ref: str, hyp: str, edits: int) -> None:
    assert word_edits(ref.split(), hyp.split()) == edits


def test_tally_is_corpus_level_and_normalised() -> None:
    t = WerTally()
    assert t.add("two medium pizzas", "2 Medium pizzas.") == 0
    assert t.add("a large pizza with tuna", "a large pizza with tune a") == 2
    assert (t.edits, t.ref_words, t.exact, t.utterances) == (2, 8, 1, 2)
    assert t.wer == pytest.approx(25.0)
    assert t.exact_rate == pytest.approx(50.0)


def test_empty_tally_reports_zero() -> None:
    assert WerTally().wer == 0.0
    assert WerTally().exact_rate == 0.0
