"""Surface forms of a tenant's menu plus plain-English cue words, for longest-match tagging.

Built from the blueprint's menu (never from code), so a new menu needs no code change; the
only words written here are generic English: negations, 'extra'/'light', joiners, fillers.
Words that match nothing exactly get one more chance through a menu-aware sound-alike match.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from appliance.dialog.fuzzy_match import SoundAlike, sound_key
from appliance.dialog.number_words import TENS, UNITS, read_number
from blueprints.menu import Menu, MenuTerm

NEGATIONS = [
    "no", "not", "without", "avoid", "hold", "hold the", "hold on", "hold off on", "skip",
    "skip the", "minus", "except", "except for", "never", "none", "nothing", "don't", "dont",
    "won't", "wont", "doesn't", "leave off", "leave off the", "leave out", "leave out the",
    "take off", "take off the", "remove", "remove the", "nix", "exclude", "excluding",
    "instead of",
]
QUALIFIERS = {
    "extra": ["extra", "more", "additional", "double", "lots of", "a lot of", "plenty of",
              "heavy on", "heavy on the", "a lot"],
    "light": ["light", "light on", "light on the", "a little", "a little bit of", "a bit of",
              "easy on", "easy on the", "go easy on", "go easy on the", "less", "not much",
              "not too much", "not too many", "not so much", "just a little"],
}
# value: "and" lists and ends a negation, "with" attaches, "but" contrasts, "or" keeps negating.
JOINERS = {
    "and": "and", "plus": "and", "also": "and", "add": "and", "adding": "and", "then": "and",
    "include": "and", "including": "and", "as well as": "and", "with": "with",
    "along with": "with", "together with": "with", "but": "but", "or": "or", "nor": "or",
}
# Category nouns a caller may leave out: "lunch size" is also said "lunch".
CATEGORY_NOUNS = {"size", "sized", "style", "crust", "crusts"}
PRONOUNS = {"i", "you", "we", "u", "he", "she", "they", "ya", "someone", "somebody"}
# Plain English that is never a dish, never sound-alike matched, never reported as unknown.
COMMON_WORDS = set("""
a about after again all along also am an and any anything are as at be because been begin
being beverage beverages bit both but by can can't could couldn't day did do does doing
don't done drink drinks each either else even evening ever every favor for from get gets
getting give go going good got great guess had has have having he hello her here hey hi him
his how i i'd i'll i'm i've id if ill im in include is it it's item items its just keep kind
kinds know let let's lets like little look looking lot love make may maybe me mine more
morning much my need needs nice night now of off oh ok okay on once one only or order
ordering orders other our out over place please pleased put rather really right same say see
set she should size sized sizes so some something start sure take than thank thanks that
that's thats the their them then there these they thing think this those though time to
today today's tonight too topping toppings try trying up us very want wanted wanting wants
was way we well were what when where which while who why will wish with would yeah yes you
your
""".split())

# English words that sound like a small number; a recogniser writes them for the number
# ("i want to large pizzas", "and for medium cokes"). Read as numbers only before a plural.
NUMBER_HOMOPHONES = {"to": 2, "too": 2, "do": 2, "for": 4, "fore": 4}
# After these a 'for'/'to' is the preposition: "i need it for large pizzas".
_OBJECTS = {"it", "them", "this", "that", "those", "these", "us"}
NEGATION, QUALIFIER, JOINER, NUMBER, WORD = "negation", "qualifier", "joiner", "number", "word"
ENTITY_KINDS = ("item", "size", "style", "option", "container", "volume")


@dataclass(frozen=True)
class Tag:
    """One recognised phrase: kind is an entity kind, number, qualifier, negation, joiner or word."""

    kind: str
    value: str
    text: str
    heard: str | None = None  # what was actually said, when a sound-alike match repaired it


_CONTRACTIONS = {"that's", "it's", "what's", "there's", "here's", "let's", "he's", "she's"}


def normalize(text: str) -> list[str]:
    """Lower-case words; punctuation and hyphens become spaces, apostrophes and decimals stay."""
    text = unicodedata.normalize("NFKD", text.lower().replace("\u2019", "'"))
    text = text.encode("ascii", "ignore").decode()  # "jalapeño" -> "jalapeno"
    text = re.sub(r"[^a-z0-9'. ]+", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)
    return [w[:-2] + "s" if w.endswith("'s") and w not in _CONTRACTIONS else w
            for w in text.split()]


def _variants(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Singular/plural forms of a phrase's last word, and the phrase without a category noun."""
    *head, last = words
    forms = [last[:-3] + "y"] if last.endswith("ies") else []
    if last.endswith("es"):
        forms.append(last[:-2])
    if last.endswith("s") and len(last) > 3:
        forms.append(last[:-1])
    if not last.endswith("s"):
        forms += [last[:-1] + "ies"] if last.endswith("y") else [last + "s", last + "es"]
    out = [(*head, f) for f in forms]
    if head and last in CATEGORY_NOUNS:
        out.append(tuple(head))
    return out


class MenuLexicon:
    """Longest-match tagger over the menu's phrases, numbers and English cue words."""

    def __init__(self, menu: Menu, sound_alike: bool = True) -> None:
        self.menu = menu
        self.sound_alike = sound_alike  # off only to measure what the repair is worth
        exact: dict[tuple[str, ...], Tag] = {}
        for kind, tid, term in _entities(menu):
            for surface in term.phrases():
                words = tuple(normalize(surface))
                if words:
                    exact.setdefault(words, Tag(kind, tid, surface))
        derived: dict[tuple[str, ...], Tag] = {}
        for words, tag in exact.items():
            for v in _variants(words):
                derived.setdefault(v, tag)
        cues: list[tuple[str, str, str]] = [(NEGATION, "remove", w) for w in NEGATIONS]
        for q, forms in menu.qualifiers.items():
            cues += [(QUALIFIER, q, w) for w in forms]
        cues += [(QUALIFIER, q, w) for q, forms in QUALIFIERS.items() for w in forms]
        cues += [(JOINER, v, w) for w, v in JOINERS.items()]
        cues += [(NUMBER, str(n), w) for w, n in menu.numbers.items()]
        for kind, value, surface in cues:
            words = tuple(normalize(surface))
            if words:
                exact.setdefault(words, Tag(kind, value, surface))
        self._phrases = {**derived, **exact}
        self._longest = max(len(p) for p in self._phrases)
        self._sounds = SoundAlike(
            [(" ".join(w), t) for w, t in self._phrases.items() if t.kind in ENTITY_KINDS],
            protected=COMMON_WORDS)
        # Surfaces that name several of an item ('pizzas', 'pies'): a quantity above one.
        self._plurals = {" ".join(normalize(p)) for i in menu.items
                         for p in [i.plural or "", *i.synonyms]
                         if p and p != i.name and p.endswith("s") and not i.name.endswith("s")}
        spoken = {**UNITS, **TENS, **menu.numbers}
        self._item_keys: dict[str, set[str]] = {}
        for words, t in self._phrases.items():
            if t.kind == "item" and len("".join(words)) >= SoundAlike.MIN_CHARS:
                self._item_keys.setdefault(sound_key("".join(words)), set()).add(t.value)
        self._numbers = SoundAlike([(w, Tag(NUMBER, str(n), w)) for w, n in spoken.items() if n > 0],
                                   protected=COMMON_WORDS, min_chars=3)

    def tag(self, text: str) -> list[Tag]:
        """Tag `text` left to right, longest phrase first; unknown words become kind 'word'."""
        words = normalize(text)
        out: list[Tag] = []
        i = 0
        while i < len(words):
            tag, used = self._at(words, i)
            out.append(tag)
            i += used
        return self._repair(out) if self.sound_alike else out

    def _at(self, words: list[str], i: int) -> tuple[Tag, int]:
        for n in range(min(self._longest, len(words) - i), 0, -1):
            hit = self._phrases.get(tuple(words[i:i + n]))
            if hit:
                num = read_number(words, i)
                if num and num[1] > n:
                    break  # "a couple of" is one quantity, not "a" and two words
                if hit.kind == "container" and i + n < len(words) and words[i + n] in PRONOUNS:
                    break  # "can i get ..." asks, it is not a can
                return Tag(hit.kind, hit.value, " ".join(words[i:i + n])), n
        num = read_number(words, i)
        if num:
            return Tag(NUMBER, str(num[0]), " ".join(words[i:i + num[1]])), num[1]
        return Tag(WORD, words[i], words[i]), 1

    def _repair(self, tags: list[Tag]) -> list[Tag]:
        """Replace unknown words by the menu phrase they sound like ('tune a' -> tuna)."""
        out: list[Tag] = []
        i = 0
        while i < len(tags):
            if tags[i].kind == WORD:
                found = self._sounds.match([t.text for t in tags[i:i + 3]],
                                           joinable=[_joinable(t) for t in tags[i:i + 3]])
                if found:
                    tag, used = found
                    heard = " ".join(t.text for t in tags[i:i + used])
                    out.append(Tag(tag.kind, tag.value, tag.text, heard=heard))
                    i += used
                    continue
            out.append(tags[i])
            i += 1
        return self._repair_quantities(out)

    def _repair_quantities(self, tags: list[Tag]) -> list[Tag]:
        """An unknown word right before a menu phrase, not after a number, may be a misheard
        quantity ('sex large pizzas', 'sexy medium pizzas' -> six); anywhere else 'sex' stays
        a word. Plain English that sounds like a number ('to', 'for') is one only before menu
        words naming several of an item ('get me to medium pizzas'), never before a single
        one ('get me to medium pizza' was 'a medium' as often as 'two')."""
        out = list(tags)
        for i, t in enumerate(tags[:-1]):
            if t.kind != WORD or tags[i + 1].kind not in ENTITY_KINDS:
                continue
            if i and tags[i - 1].kind == NUMBER:
                continue
            if t.text in NUMBER_HOMOPHONES:
                if self._names_several(tags, i + 1) and not (i and tags[i - 1].text in _OBJECTS):
                    n = NUMBER_HOMOPHONES[t.text]
                    spelled = next(w for w, v in UNITS.items() if v == n)
                    out[i] = Tag(NUMBER, str(n), spelled, heard=t.text)
                continue
            found = self._numbers.match([t.text], joinable=[True], extra_edits=1)
            if found:
                num = found[0]
                out[i] = Tag(NUMBER, num.value, num.text, heard=t.text)
        return out

    def _names_several(self, tags: list[Tag], i: int) -> bool:
        """Whether the menu phrases from tags[i] on end in a plural item ('medium pizzas')."""
        for t in tags[i:]:
            if t.kind == "item":
                return t.text in self._plurals
            if t.kind not in ENTITY_KINDS and not (t.kind == JOINER and t.value == "and"):
                return False
        return False

    def items_like(self, text: str) -> set[str]:
        """Items with a phrase of the same sound skeleton as `text` ('pepsis': pizza, pepsi);
        empty when sound-alike repair is off."""
        if not self.sound_alike:
            return set()
        return self._item_keys.get(sound_key(text.replace(" ", "")), set())

    def reread(self, text: str, kinds: set[str]) -> Tag | None:
        """Another reading of `text` among `kinds` (an abbreviation or sound-alike), or None."""
        return self._sounds.nearest(text, kinds)


def _joinable(tag: Tag) -> bool:
    """May this tag be glued to the word before it? ('tune' + 'a' may be 'tuna')."""
    return tag.kind == WORD or (tag.kind == NUMBER and tag.text in ("a", "an"))


def _entities(menu: Menu) -> list[tuple[str, str, MenuTerm]]:
    """(kind, id, term) for everything on the menu a caller can name, items first."""
    out: list[tuple[str, str, MenuTerm]] = [
        ("item", i.id, MenuTerm(name=i.name, synonyms=[i.plural, *i.synonyms]))
        for i in menu.items]
    sizes = {s for i in menu.items for s in i.sizes}
    out += [("size", s, menu.size(s)) for s in dict.fromkeys([*menu.sizes, *sizes])]
    out += [("style", k, v) for k, v in menu.styles.items()]
    out += [("option", k, v) for k, v in menu.options.items()]
    out += [("container", k, v) for k, v in menu.containers.items()]
    out += [("volume", k, v) for k, v in menu.volumes.items()]
    return out
