"""Menu-aware sound-alike matching: a consonant skeleton plus a bounded edit distance.

Recognisers mishear menu words as near-homophones ('tune a' for tuna, 'vantas' for fantas,
'sex' for six). Two spellings that share a skeleton of consonant classes and differ by one
or two letters are taken as the same word, but only where exact matching found nothing and
only when exactly one menu phrase fits: a tie or a distant word stays unmatched.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar


class Tagged(Protocol):
    """What a match returns: anything with a kind and a value (the lexicon's Tag)."""

    @property
    def kind(self) -> str: ...

    @property
    def value(self) -> str: ...


T = TypeVar("T", bound=Tagged)


def sound_key(text: str) -> str:
    """A consonant skeleton that recognisers rarely change: 'vantas' and 'fantas' share FNTS."""
    w = text.lower().replace(" ", "")
    for a, b in (("ph", "f"), ("ck", "k"), ("ch", "j"), ("sch", "sk"), ("qu", "kw"), ("x", "ks"),
                 ("wr", "r"), ("kn", "n"), ("gh", "g")):
        w = w.replace(a, b)
    out = ["A"] if w[:1] in "aeiou" else []
    for i, ch in enumerate(w):
        nxt = w[i + 1:i + 2]
        if ch == "c":
            cls = "S" if nxt in ("e", "i", "y") else "K"
        elif ch == "g":
            cls = "J" if nxt in ("e", "i", "y") else "K"
        else:
            cls = _SOUND_CLASS.get(ch, "")
        if cls and (not out or out[-1] != cls):
            out.append(cls)
    return "".join(out)


_SOUND_CLASS = {**dict.fromkeys("bp", "P"), **dict.fromkeys("fv", "F"), **dict.fromkeys("dt", "T"),
                **dict.fromkeys("kq", "K"), **dict.fromkeys("sz", "S"), **dict.fromkeys("mn", "N"),
                "j": "J", "l": "L", "r": "R"}


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or limit + 1 as soon as it must exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def _allowed_edits(target: str) -> int:
    return 1 if len(target) < 7 else 2


_DEVOICE = str.maketrans("gbdvzc", "kptfsk")


def _consonants(word: str) -> str:
    """Consonants with voiced and voiceless pairs folded: on a phone line 'cogs' is 'cokes'."""
    return "".join(ch for ch in word if ch not in "aeiouy").translate(_DEVOICE)


def _distance(heard: str, target: str, limit: int) -> int:
    """Edit distance, except that spellings differing only in vowels or voicing ('coaks',
    'cogs', 'cokes') count as within the limit: recognisers spell an unfamiliar vowel sound
    many ways, and G.711 blurs voiced and voiceless consonants."""
    d = edit_distance(heard, target, limit)
    if d > limit and len(target) >= 5 and _consonants(heard) == _consonants(target):
        return limit
    return d


class SoundAlike(Generic[T]):
    """Menu-aware near match, used only when exact matching failed: same sound key, few edits."""

    MIN_CHARS = 4  # shorter menu words (ham, pie) are too easy to hit by accident

    def __init__(self, entries: list[tuple[str, T]], protected: set[str],
                 min_chars: int = MIN_CHARS) -> None:
        self.min_chars = min_chars
        joined = [(p.replace(" ", ""), t) for p, t in entries]
        self._entries = [(j, sound_key(j), t) for j, t in joined]
        self._by_key: dict[str, list[tuple[str, T]]] = {}
        for j, key, tag in self._entries:
            if len(j) >= self.min_chars:
                self._by_key.setdefault(key, []).append((j, tag))
        self._protected = protected
        self._nearest: dict[tuple[str, frozenset[str]], T | None] = {}

    def match(self, words: list[str], joinable: list[bool],
              extra_edits: int = 0) -> tuple[T, int] | None:
        """Best (tag, words used) for words[0:1..3] glued together, or None if none or a tie.

        `extra_edits` widens the edit limit where the context already asks for this kind of
        word (a quantity right before a menu phrase)."""
        if not words or words[0] in self._protected:
            return None
        found: list[tuple[int, int, T]] = []
        for n in range(1, len(words) + 1):
            if not all(joinable[:n]):
                break
            heard = "".join(words[:n])
            for joined, tag in self._by_key.get(sound_key(heard), []):
                limit = _allowed_edits(joined) + extra_edits
                d = _distance(heard, joined, limit)
                if d <= limit:
                    found.append((d, -n, tag))
        return _unique_best(found)

    def nearest(self, text: str, kinds: set[str]) -> T | None:
        """The one phrase of `kinds` that `text` abbreviates or sounds like, else None."""
        memo = (text, frozenset(kinds))
        if memo not in self._nearest:  # texts come from the menu's own words: a bounded set
            self._nearest[memo] = self._scan(text.replace(" ", ""), kinds)
        return self._nearest[memo]

    def _scan(self, heard: str, kinds: set[str]) -> T | None:
        key = sound_key(heard)
        found: list[tuple[int, int, T]] = []
        for joined, joined_key, tag in self._entries:
            if tag.kind not in kinds:
                continue
            if len(heard) >= 3 and joined.startswith(heard):
                found.append((0, 0, tag))
            elif len(joined) >= self.min_chars and joined_key == key:
                limit = _allowed_edits(joined)
                if edit_distance(heard, joined, limit) <= limit:
                    found.append((1, 0, tag))
        return (_unique_best(found) or (None, 0))[0]


def _unique_best(found: list[tuple[int, int, T]]) -> tuple[T, int] | None:
    if not found:
        return None
    best = min(found, key=lambda f: (f[0], f[1]))
    rivals = {(f[2].kind, f[2].value) for f in found if f[:2] == best[:2]}
    return (best[2], -best[1]) if len(rivals) == 1 else None
