"""Quantities as callers say them: digits, 'twenty one', 'a couple of', 'half a dozen'.

Plain English only (no menu content), shared by the lexicon for quantities.
"""

from __future__ import annotations

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
# Multi-word idioms; "a"/"an" are quantities only where no longer phrase claims them.
IDIOMS: dict[tuple[str, ...], int] = {
    ("a",): 1, ("an",): 1, ("single",): 1, ("a", "single"): 1, ("a", "couple", "of"): 2,
    ("couple", "of"): 2, ("a", "couple"): 2, ("a", "pair", "of"): 2, ("pair", "of"): 2,
    ("a", "dozen"): 12, ("dozen",): 12, ("one", "dozen"): 12, ("half", "a", "dozen"): 6,
    ("a", "hundred"): 100, ("another",): 1, ("the", "other"): 1, ("the", "other", "one"): 1,
}
_LONGEST_IDIOM = max(len(k) for k in IDIOMS)


def read_number(words: list[str], i: int) -> tuple[int, int] | None:
    """The quantity spelled at words[i:] and how many words it takes, or None if there is none."""
    w = words[i]
    if w.isdigit():
        return int(w), 1
    best: tuple[int, int] | None = None
    for n in range(min(_LONGEST_IDIOM, len(words) - i), 0, -1):
        value = IDIOMS.get(tuple(words[i:i + n]))
        if value is not None:
            best = (value, n)
            break
    spelled = _spelled(words, i)
    if spelled and (best is None or spelled[1] > best[1]):
        return spelled
    return best


def _spelled(words: list[str], i: int) -> tuple[int, int] | None:
    """'seven', 'twenty', 'twenty one', 'one hundred' (and 'two hundred and five')."""
    w = words[i]
    if w in TENS:
        value, used = TENS[w], 1
        if i + 1 < len(words) and 0 < UNITS.get(words[i + 1], 0) < 10:
            value, used = value + UNITS[words[i + 1]], 2
        return value, used
    if w not in UNITS:
        return None
    value, used = UNITS[w], 1
    if i + 1 < len(words) and words[i + 1] == "hundred" and value > 0:
        value, used = value * 100, 2
        rest = words[i + 2:]
        skip = 1 if rest[:1] == ["and"] else 0
        tail = _spelled(words, i + 2 + skip) if len(rest) > skip else None
        if tail and tail[0] < 100:
            value, used = value + tail[0], used + skip + tail[1]
    return value, used
