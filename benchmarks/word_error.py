"""Word error rate and exact-utterance match for speech benchmarks: pure, no dependencies.

Text is normalised before scoring (lower case, punctuation stripped, digits spelled out as
words) so "2 Large pizzas." and "two large pizzas" count as the same words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]


def number_words(n: int) -> list[str]:
    """`n` >= 0 as spoken English words without "and": 124 -> one hundred twenty four."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_words(n % 10) if n % 10 else [])
    for size, name in _SCALES:
        if n >= size:
            rest = number_words(n % size) if n % size else []
            return number_words(n // size) + [name] + rest
    raise AssertionError("unreachable")  # pragma: no cover


def normalise(text: str) -> list[str]:
    """Lower-case words of `text` with punctuation removed and digit runs spelled out."""
    text = text.lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<=\d)\.(?=\d)", " point ", text)  # 2.50 -> 2 point 50
    text = re.sub(r"\d+", lambda m: " " + " ".join(number_words(int(m.group()))) + " ", text)
    text = text.replace("'", "").replace("\u2019", "")  # that's -> thats, on both sides
    return re.sub(r"[^a-z]+", " ", text).split()


def word_edits(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Minimum substitutions + deletions + insertions turning `ref` into `hyp` (Levenshtein)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


@dataclass
class WerTally:
    """Corpus-level counts: WER is total edits over total reference words, not a mean of rates."""

    edits: int = 0
    ref_words: int = 0
    exact: int = 0
    utterances: int = 0

    def add(self, reference: str, hypothesis: str) -> int:
        """Score one utterance after normalising both sides; returns its edit count."""
        ref, hyp = normalise(reference), normalise(hypothesis)
        edits = word_edits(ref, hyp)
        self.edits += edits
        self.ref_words += len(ref)
        self.exact += edits == 0
        self.utterances += 1
        return edits

    @property
    def wer(self) -> float:
        """Word error rate in percent (can exceed 100 with many insertions); 0 when empty."""
        return 100.0 * self.edits / self.ref_words if self.ref_words else 0.0

    @property
    def exact_rate(self) -> float:
        """Percentage of utterances recognised with no word error; 0 when empty."""
        return 100.0 * self.exact / self.utterances if self.utterances else 0.0
