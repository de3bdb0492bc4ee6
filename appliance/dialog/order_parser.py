"""Menu-grounded order understanding: an utterance -> order lines + unknown mentions.

Deterministic and fast (no model): tags phrases with `MenuLexicon`, then attaches numbers,
sizes and toppings to the item they belong to. What looks like an item but is not on the
menu ("a sushi roll") is returned as unknown so the dialog can say so, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.dialog.menu_lexicon import MenuLexicon, Tag
from blueprints.menu import Menu

# Words that carry no order content; anything else after a number that is not on the menu
# is reported as an unknown item.
FILLER = {
    "and", "with", "plus", "also", "please", "thanks", "thank", "you", "of", "the", "some",
    "on", "it", "them", "that", "this", "to", "go", "for", "me", "my", "order", "get", "have",
    "i'd", "id", "i", "like", "want", "would", "can", "could", "may", "i'll", "ill", "take",
    "um", "uh", "hi", "hello", "hey", "yes", "yeah", "okay", "ok", "so", "just", "then",
    "each", "too", "as", "well", "be", "all", "more", "another", "other", "one", "ones",
}


@dataclass(frozen=True)
class ParsedLine:
    """One item the caller asked for, in canonical menu ids."""

    item_id: str
    quantity: int = 1
    size: str | None = None
    modifiers: tuple[tuple[str, str], ...] = ()  # (kind, option_id): add/remove/extra/light


@dataclass
class ParseResult:
    lines: list[ParsedLine] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


@dataclass
class _Draft:
    item_id: str | None = None
    quantity: int | None = None
    size: str | None = None
    modifiers: list[tuple[str, str]] = field(default_factory=list)
    qualifier: str | None = None
    stray: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return self.item_id is None and not self.modifiers and self.size is None


class OrderParser:
    """Parses utterances against one menu; construct once per blueprint."""

    def __init__(self, menu: Menu) -> None:
        self.menu = menu
        self.lexicon = MenuLexicon(menu)
        self._items = {i.id: i for i in menu.items}
        self._default_build = next((i.id for i in menu.items if i.options), None)

    def parse(self, text: str) -> ParseResult:
        result = ParseResult()
        draft = _Draft()
        for tag in self.lexicon.tag(text):
            draft = self._step(draft, tag, result)
        self._close(draft, result)
        return result

    def _step(self, d: _Draft, tag: Tag, out: ParseResult) -> _Draft:
        if tag.kind == "number":
            if d.item_id is not None or d.quantity is not None or d.stray:
                self._close(d, out)
                d = _Draft()
            d.quantity = int(tag.value)
        elif tag.kind == "size":
            if d.item_id is not None and d.size is not None:
                self._close(d, out)
                d = _Draft()
            d.size = tag.value
        elif tag.kind == "item":
            if d.item_id is not None:
                self._close(d, out)
                d = _Draft()
            d.item_id = tag.value
            d.stray.clear()
        elif tag.kind == "qualifier":
            d.qualifier = tag.value
        elif tag.kind == "option":
            d.modifiers.append((d.qualifier or "add", tag.value))
            if d.qualifier != "remove":  # "no onions or peppers" keeps removing
                d.qualifier = None
        elif tag.text in ("and", "with", "plus", "add"):
            d.qualifier = None  # "no onions and pepperoni": the negation ends here
        elif tag.text not in FILLER and d.item_id is None and d.quantity is not None:
            d.stray.append(tag.text)
        return d

    def _close(self, d: _Draft, out: ParseResult) -> None:
        if d.item_id is None and d.stray:
            out.unknown.append(" ".join(d.stray))
            return
        if d.empty():
            return
        item_id = d.item_id
        if item_id is None:
            # Toppings without an item: onto the previous buildable line, or a new default one.
            last = out.lines[-1] if out.lines else None
            if last and d.quantity is None and self._items[last.item_id].options:
                out.lines[-1] = ParsedLine(last.item_id, last.quantity, d.size or last.size,
                                           last.modifiers + tuple(d.modifiers))
                return
            item_id = self._default_build
            if item_id is None:
                return
        item = self._items[item_id]
        mods = tuple(m for m in d.modifiers if m[1] in item.options)
        size = d.size if d.size in item.sizes else (item.default_size if item.sizes else None)
        out.lines.append(ParsedLine(item_id, d.quantity or 1, size, mods))
