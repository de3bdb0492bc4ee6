"""Menu-grounded order understanding: an utterance -> order lines + unknown mentions.

Deterministic and fast (no model). `MenuLexicon` tags phrases; negation and 'extra'/'light'
scopes are marked; the utterance is cut into one chunk per ordered thing (a quantity or a new
dish starts one); each chunk becomes a line. What looks like a dish but is not on the menu
("a sushi roll") is returned as unknown so the dialog can say so, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from appliance.dialog.menu_lexicon import (
    COMMON_WORDS,
    JOINER,
    NEGATION,
    NUMBER,
    QUALIFIER,
    WORD,
    MenuLexicon,
    Tag,
)
from blueprints.menu import Menu, MenuItem

MODIFIER_KINDS = ("size", "style", "option", "container", "volume")
_ARTICLES = ("a", "an")
# After a negated option these keep negating: "no onions or peppers", "hold any of the ham".
_KEEP_NEGATING = {"or", "nor", "any", "the", "either", "of"}
_NEGATION_REACH = 4  # words a negation may wait for its object: "i do not want any ham"
# "a two topping pizza": a number before these nouns describes the dish, it orders nothing.
_DESCRIBED_NOUNS = {"topping", "toppings", "ingredient", "ingredients", "item", "items"}
# "... both with onions": what follows applies to every line just named.
_DISTRIBUTIVE = {"both": 2, "all": 0, "each": 0}


@dataclass(frozen=True)
class ParsedLine:
    """One thing the caller asked for, in canonical menu ids."""

    item_id: str
    quantity: int = 1
    size: str | None = None
    modifiers: tuple[tuple[str, str], ...] = ()  # (kind, option_id): add/remove/extra/light
    styles: tuple[str, ...] = ()
    removed_styles: tuple[str, ...] = ()  # "not thin crust"
    declined: tuple[tuple[str, str], ...] = ()  # ("extra", option_id): "no extra cheese"
    container: str | None = None
    volume: str | None = None


@dataclass
class ParseResult:
    """Lines understood, off-menu mentions, lines over the menu's quantity limit, repairs."""

    lines: list[ParsedLine] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    over_limit: list[ParsedLine] = field(default_factory=list)
    repaired: list[tuple[str, str]] = field(default_factory=list)  # (heard, understood)


@dataclass(frozen=True)
class _Tok:
    kind: str
    value: str
    text: str
    neg: bool = False
    qual: str | None = None


@dataclass
class _Draft:
    item_id: str
    quantity: int | None = None
    implied: bool = False  # no dish was named: 'one with ham'
    size: str | None = None
    mods: list[tuple[str, str]] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    removed_styles: list[str] = field(default_factory=list)
    declined: list[tuple[str, str]] = field(default_factory=list)
    container: str | None = None
    volume: str | None = None


def _mark_scopes(tags: list[Tag]) -> list[_Tok]:
    """Mark which options/styles a negation covers and which option a qualifier qualifies."""
    out: list[_Tok] = []
    neg = captured = False
    waited = 0
    qual: str | None = None
    for t in tags:
        k = t.kind
        if k == NEGATION:
            neg, captured, waited = True, False, 0
        elif k == QUALIFIER:
            neg = neg and not captured
            qual = t.value
        elif k in ("option", "style"):
            out.append(_Tok(k, t.value, t.text, neg, qual if k == "option" else None))
            captured, qual = captured or neg, None
            continue
        elif k == JOINER and (t.value == "but" or (captured and t.value != "or")):
            neg = False
        elif k in ("item", "size") or (k == NUMBER and (captured or t.text not in _ARTICLES)):
            neg, qual = False, None
        elif captured and t.text not in _KEEP_NEGATING:
            neg = False
        elif neg and not captured:
            waited += 1
            neg = waited <= _NEGATION_REACH
        out.append(_Tok(k, t.value, t.text))
    return out


class OrderParser:
    """Parses utterances against one menu; construct once per blueprint."""

    def __init__(self, menu: Menu, sound_alike: bool = True) -> None:
        self.menu = menu
        self.lexicon = MenuLexicon(menu, sound_alike)
        self._items = {i.id: i for i in menu.items}
        self._build = menu.build_item()

    def parse(self, text: str) -> ParseResult:
        """Understand one utterance; never raises on odd input, returns what it could place."""
        result = ParseResult()
        tags = self.lexicon.tag(text)
        result.repaired = [(t.heard, t.text) for t in tags if t.heard]
        drafts: list[_Draft] = []
        for chunk in self._chunks(_mark_scopes(tags)):
            self._place(chunk, drafts, result)
        for d in _split_umbrellas(drafts):
            line = self._finish(d)
            over = line.quantity > self.menu.limit_for(line.item_id)
            (result.over_limit if over else result.lines).append(line)
        return result

    # -- cutting the utterance into one chunk per ordered thing ------------------------------

    def _chunks(self, toks: list[_Tok]) -> list[list[_Tok]]:
        """One chunk per ordered thing: a quantity, a different dish or a second size starts
        one; words describing the next dish move with it ('a coke and large ham | pizza')."""
        chunks: list[list[_Tok]] = [[]]
        head: str | None = None
        head_at = -1
        for i, t in enumerate(toks):
            cur = chunks[-1]
            if t.kind == NUMBER and self._is_descriptor(toks, i, cur, head):
                t = replace(t, kind=WORD)  # "one large two topping pizza": not a quantity
            if t.kind == NUMBER:
                if head is not None or any(c.kind != WORD and c.kind != JOINER for c in cur):
                    chunks.append([])
                    head = None
                chunks[-1].append(t)
            elif t.kind == "item" and head is not None and (
                    head != t.value or self._names_another(cur, head_at, t.value)):
                start = self._run_start(cur, head_at, t.value)
                chunks.append(cur[start:] + [t])
                del cur[start:]
                head, head_at = t.value, len(chunks[-1]) - 1
            elif t.kind == "size" and head is not None and any(c.kind == "size" for c in cur):
                chunks.append([t])  # "a large pizza and medium ..." starts another thing
                head = None
            else:
                cur.append(t)
                if t.kind == "item" and head is None:
                    head, head_at = t.value, len(cur) - 1
        return [c for c in chunks if c]

    def _is_descriptor(self, toks: list[_Tok], i: int, cur: list[_Tok], head: str | None) -> bool:
        """A number inside a named thing rather than a new quantity: 'a two topping pizza',
        'one large two topping pizza', or the pronoun in 'a large one with ham'."""
        nxt = toks[i + 1].text if i + 1 < len(toks) else ""
        if nxt in _DESCRIBED_NOUNS:
            return True
        if head is not None:
            return False
        if toks[i].text == "one" and cur and cur[-1].kind in MODIFIER_KINDS:
            return True
        return any(c.kind == NUMBER for c in cur) and i + 2 < len(toks) and toks[i + 1].kind == WORD and toks[i + 2].kind == "item"

    def _names_another(self, cur: list[_Tok], head_at: int, item_id: str) -> bool:
        """'a ham pizza and mushroom pizza' names two; 'a pizza with ham and onion pizza' one."""
        start = self._run_start(cur, head_at, item_id)
        between = cur[head_at + 1:start]
        return start < len(cur) and bool(between) and all(
            t.kind == JOINER and t.value == "and" for t in between)

    def _run_start(self, cur: list[_Tok], head_at: int, item_id: str) -> int:
        """Where the words that describe the next dish begin ('... and large pepperoni | pizza')."""
        item = self._items[item_id]
        start = j = len(cur)
        while j - 1 > head_at:
            t = cur[j - 1]
            if t.kind in MODIFIER_KINDS and not t.neg and _accepts(item, t):
                start = j - 1
            elif not (t.kind == QUALIFIER or (t.kind == JOINER and t.value == "and")):
                break
            j -= 1
        return start

    # -- turning a chunk into a line ---------------------------------------------------------

    def _place(self, chunk: list[_Tok], drafts: list[_Draft], out: ParseResult) -> None:
        """Make one chunk a new line, or add it to an earlier line, or report it unknown."""
        head_tok = next((t for t in chunk if t.kind == "item"), None)
        num = next((t for t in chunk if t.kind == NUMBER), None)
        mods = [t for t in chunk if t.kind in MODIFIER_KINDS]
        if head_tok is None:
            self._place_headless(chunk, num, mods, drafts, out)
            return
        head = self._heard_item(head_tok, mods, out)
        draft = _Draft(head, int(num.value) if num else None)
        drafts.append(draft)
        self._apply(draft, mods, drafts)
        self._share(chunk, draft, drafts)

    def _heard_item(self, tok: _Tok, mods: list[_Tok], out: ParseResult) -> str:
        """The item named, unless its toppings or styles say it was another that sounds the
        same: 'two large pepsis with onions' was heard for pizzas (a drink has no toppings)."""
        wanted = [m for m in mods if m.kind in ("option", "style")]
        if not wanted or any(_accepts(self._items[tok.value], m) for m in wanted):
            return tok.value
        fits = [i for i in self.lexicon.items_like(tok.text)
                if i != tok.value and all(_accepts(self._items[i], m) for m in wanted)]
        if len(fits) != 1:
            return tok.value
        out.repaired.append((tok.text, self._items[fits[0]].name))
        return fits[0]

    def _place_headless(self, chunk: list[_Tok], num: _Tok | None, mods: list[_Tok],
                        drafts: list[_Draft], out: ParseResult) -> None:
        """No dish named: an off-menu dish, more for an earlier line, or the menu's build item."""
        unknown = _unknown_words(chunk) if num else None
        if unknown:
            out.unknown.append(unknown)
            return
        if not mods:
            return
        target = self._merge_target(num, mods, drafts)
        if target is None:
            if self._build is None:
                return
            target = _Draft(self._build, int(num.value) if num else None, implied=True)
            drafts.append(target)
        self._apply(target, mods, drafts)

    def _share(self, chunk: list[_Tok], draft: _Draft, drafts: list[_Draft]) -> None:
        """'a small pizza and a large pizza both with onions': onions on both lines."""
        shared_from, group = _distributive(chunk)
        if not group or (draft.quantity or 1) != 1:  # "six pizzas all with ham" is one line
            return
        same: list[_Draft] = []
        for d in reversed(drafts[:-1]):
            if d.item_id != draft.item_id:
                break
            same.append(d)
        shared = [m for m in chunk[shared_from:] if m.kind in MODIFIER_KINDS]
        for d in same[:group - 1] if group > 1 else same:
            self._apply(d, shared, [])

    def _merge_target(self, num: _Tok | None, mods: list[_Tok],
                      drafts: list[_Draft]) -> _Draft | None:
        """The earlier line a headless chunk only adds to ('... and a thin crust'), if any.

        A quantity or a wanted topping orders another thing ('and a pepperoni'); an article
        before a style, a size or a refusal does not ('make it a large', 'a favor: no ham').
        """
        if num is not None and (num.text not in _ARTICLES
                                or any(m.kind == "option" and not m.neg for m in mods)):
            return None
        for d in reversed(drafts):
            item = self._items[d.item_id]
            if all(_accepts(item, m) for m in mods) and not (
                    d.size and any(m.kind == "size" for m in mods)):
                return d
        return None

    def _apply(self, d: _Draft, mods: list[_Tok], drafts: list[_Draft]) -> None:
        item = self._items[d.item_id]
        for m in mods:
            if not _accepts(item, m):
                alt = self.lexicon.reread(m.text, _kinds_of(item))
                if alt is not None:
                    m = _Tok(alt.kind, alt.value, m.text, m.neg, m.qual)
                else:
                    home = next((o for o in reversed(drafts)
                                 if o is not d and _accepts(self._items[o.item_id], m)), None)
                    if home is not None:
                        _set(home, m)
                    continue
            _set(d, m)

    def _finish(self, d: _Draft) -> ParsedLine:
        item = self._items[d.item_id]
        size = d.size if d.size in item.sizes else item.default_size
        return ParsedLine(
            item.id, d.quantity or 1, size, tuple(dict.fromkeys(d.mods)),
            tuple(dict.fromkeys(d.styles)), tuple(dict.fromkeys(d.removed_styles)),
            tuple(dict.fromkeys(d.declined)), d.container, d.volume)


def _accepts(item: MenuItem, t: _Tok) -> bool:
    if t.kind == "size":
        return t.value in item.sizes
    field_of = {"style": item.styles, "option": item.options, "container": item.containers,
                "volume": item.volumes}
    return t.value in field_of.get(t.kind, [])


def _kinds_of(item: MenuItem) -> set[str]:
    kinds = {"size": item.sizes, "style": item.styles, "option": item.options,
             "container": item.containers, "volume": item.volumes}
    return {k for k, v in kinds.items() if v}


def _set(d: _Draft, m: _Tok) -> None:
    """Record one modifier on a line; the first size/container/volume said wins."""
    if m.kind == "size":
        d.size = d.size or m.value
    elif m.kind == "container":
        d.container = d.container or m.value
    elif m.kind == "volume":
        d.volume = d.volume or m.value
    elif m.kind == "style":
        (d.removed_styles if m.neg else d.styles).append(m.value)
    elif m.neg and m.qual:
        d.declined.append((m.qual, m.value))
    else:
        kind = "remove" if m.neg else (m.qual or "add")
        said = [k for k, o in d.mods if o == m.value]
        if kind == "add" and said:
            return  # "extra cheese ... and cheese": the first, more precise, wish stands
        d.mods[:] = [(k, o) for k, o in d.mods if o != m.value or k != "add"]
        d.mods.append((kind, m.value))


def _distributive(chunk: list[_Tok]) -> tuple[int, int]:
    """(where shared modifiers start, how many lines share them; 0 = all) for 'both with ...'."""
    for i, t in enumerate(chunk):
        if t.kind == WORD and t.text in _DISTRIBUTIVE and i + 1 < len(chunk) and (
                chunk[i + 1].kind in MODIFIER_KINDS or chunk[i + 1].value == "with"):
            return i + 1, _DISTRIBUTIVE[t.text] or len(chunk)
    return 0, 0


def _split_umbrellas(drafts: list[_Draft]) -> list[_Draft]:
    """'two large pizzas, one with ham and one with olives' is two lines, not three.

    A named line with no toppings whose quantity the following 'one with ...' lines add up
    to exactly is only their heading: its size and styles pass on to them and it goes.
    """
    out: list[_Draft] = []
    i = 0
    while i < len(drafts):
        d = drafts[i]
        parts: list[_Draft] = []
        total = 0
        for p in drafts[i + 1:]:
            if not (p.implied and p.item_id == d.item_id) or total >= (d.quantity or 1):
                break
            parts.append(p)
            total += p.quantity or 1
        if (d.quantity or 1) > 1 and not d.implied and not d.mods and total == d.quantity:
            for p in parts:
                p.size = p.size or d.size
                p.styles = p.styles or list(d.styles)
            i += 1
            continue
        out.append(d)
        i += 1
    return out


def _unknown_words(chunk: list[_Tok]) -> str | None:
    """'sushi roll' in 'a sushi roll': words after a quantity that name nothing on the menu."""
    words: list[str] = []
    stray_at = -1
    for t in chunk[next(i for i, t in enumerate(chunk) if t.kind == NUMBER) + 1:]:
        if t.kind in (JOINER, NEGATION, NUMBER):
            break
        if t.kind == "size" and not words:
            continue
        words.append(t.text)
        if t.kind == WORD and t.text not in COMMON_WORDS:
            stray_at = len(words)
    return " ".join(words[:stray_at]) if stray_at > 0 else None
