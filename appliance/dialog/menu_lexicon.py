"""Surface forms of a tenant's menu, numbers and qualifiers, for longest-match tagging.

Built from the blueprint's menu (never from code), so a new menu needs no code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from blueprints.menu import Menu

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "couple of": 2, "a couple of": 2,
    "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "a dozen": 12, "dozen": 12,
}
QUALIFIERS = {
    "no": "remove", "without": "remove", "hold the": "remove", "hold": "remove",
    "minus": "remove", "none of the": "remove", "not": "remove",
    "extra": "extra", "double": "extra", "lots of": "extra", "a lot of": "extra",
    "light": "light", "light on the": "light", "light on": "light", "easy on the": "light",
    "a little": "light", "a little bit of": "light",
}
SIZE_WORDS = {"small": "small", "medium": "medium", "large": "large", "big": "large",
              "regular": "medium"}


@dataclass(frozen=True)
class Tag:
    """One recognised phrase: kind is item, option, size, number, qualifier or word."""

    kind: str
    value: str
    text: str


# Contractions keep their apostrophe; any other "'s" is a plural the recogniser spelled
# as a possessive ("two coke's").
_CONTRACTIONS = {"that's", "it's", "what's", "there's", "here's", "let's", "he's", "she's"}


def normalize(text: str) -> list[str]:
    """Lower-case words; punctuation and hyphens become spaces, apostrophes stay."""
    text = text.lower().replace("-", " ").replace("\u2019", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return [w[:-2] + "s" if w.endswith("'s") and w not in _CONTRACTIONS else w
            for w in text.split()]


class MenuLexicon:
    """Longest-match tagger over the menu's synonyms plus numbers, sizes and qualifiers."""

    def __init__(self, menu: Menu) -> None:
        phrases: dict[tuple[str, ...], Tag] = {}

        def add(surface: str, kind: str, value: str) -> None:
            words = tuple(normalize(surface))
            if words:
                phrases.setdefault(words, Tag(kind, value, surface))

        for item in menu.items:
            for s in item.synonyms:
                add(s, "item", item.id)
        for oid, opt in menu.options.items():
            for s in opt.synonyms:
                add(s, "option", oid)
        sizes = {s for item in menu.items for s in item.sizes}
        for word, size in SIZE_WORDS.items():
            if size in sizes:
                add(word, "size", size)
        for word, n in NUMBER_WORDS.items():
            add(word, "number", str(n))
        for word, q in QUALIFIERS.items():
            add(word, "qualifier", q)
        self._phrases = phrases
        self._longest = max(len(p) for p in phrases)

    def tag(self, text: str) -> list[Tag]:
        """Tag `text` left to right, longest phrase first; unknown words become kind 'word'."""
        words = normalize(text)
        out: list[Tag] = []
        i = 0
        while i < len(words):
            for n in range(min(self._longest, len(words) - i), 0, -1):
                hit = self._phrases.get(tuple(words[i:i + n]))
                if hit:
                    out.append(Tag(hit.kind, hit.value, " ".join(words[i:i + n])))
                    i += n
                    break
            else:
                w = words[i]
                out.append(Tag("number", w, w) if w.isdigit() else Tag("word", w, w))
                i += 1
        return out
