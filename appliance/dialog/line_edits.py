"""Corrections of order lines already taken: which line the caller means and what it becomes.

"make it a large", "no onions on the second one", "change the cokes to sprites", "remove the
coke". Whether a turn is a change or a removal comes from the blueprint's cue phrases; here
the line is found (an ordinal, a dish named, else the last line that can take the change) and
what was said is merged into it. Pure: cart-line JSON in, one edit out; the cart tools still
check the result against the menu, so an edit the menu cannot make is refused there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from appliance.dialog.cart_lines import cart_line, from_json
from appliance.dialog.menu_lexicon import JOINER, NUMBER, Tag, normalize
from appliance.dialog.order_parser import OrderParser, ParsedLine
from blueprints.menu import Menu, MenuItem

# Plain English ordinals a caller points at a line with: "the second one", "the last pizza".
ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3,
            "4th": 3, "fifth": 4, "5th": 4, "last": -1}
ATTRIBUTES = ("size", "style", "option", "container", "volume")
_NOT_QUANTITIES = {"a", "an", "another", "the other", "the other one"}


@dataclass(frozen=True)
class LineEdit:
    """Replace line `index` of the cart by `line` (cart-line JSON), or remove it (None);
    `more` are new lines ordered in the same breath ('make it a medium and add a coke')."""

    index: int
    line: dict[str, Any] | None = None
    more: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class NotHeld:
    """The caller corrected something the cart does not hold ('any sprites', 'a fifth one')."""

    thing: str


@dataclass(frozen=True)
class OverLimit:
    """The correction asks for more of one thing than a line may hold."""

    thing: str
    most: int


Edit = LineEdit | NotHeld | OverLimit


@dataclass(frozen=True)
class _Ref:
    """'the second one' (position 1, any item) or 'the last pizza' (position -1, pizza)."""

    position: int
    item_id: str | None
    ordinal: str


class LineEditor:
    """Finds the edit an utterance makes to a cart; built once per menu."""

    def __init__(self, menu: Menu) -> None:
        self.menu = menu
        self.parser = OrderParser(menu)
        self.lexicon = self.parser.lexicon

    def edit(self, text: str, cart: list[dict[str, Any]], change: bool,
             remove: bool) -> Edit | None:
        """The edit `text` makes, or None when it is no correction (then it is read as usual).

        `change`/`remove`: the blueprint's change or removal cue was heard. Without either,
        only a line pointed at by ordinal ("no onions on the second one") is a correction.
        """
        if not cart:
            return None
        tags = self.lexicon.tag(text)
        cut = _addition_at(tags)
        if cut is not None:
            edit = self.edit(" ".join(t.text for t in tags[:cut]), cart, change, remove)
            more = self.parser.parse(" ".join(t.text for t in tags[cut:])).lines
            if isinstance(edit, LineEdit):
                return replace(edit, more=tuple(cart_line(li) for li in more))
            return edit
        return self._edit(text, tags, [from_json(c) for c in cart], change, remove)

    def _edit(self, text: str, tags: list[Tag], lines: list[ParsedLine], change: bool,
              remove: bool) -> Edit | None:
        ref = self._reference(normalize(text))
        if not (change or remove or ref):
            return None
        dishes = [t.value for t in tags if t.kind == "item"]
        if not (change or remove) and ref and len(dishes) > (ref.item_id is not None):
            return None  # "and two pizzas, the first one with ham": new lines, not a correction
        named = list(dict.fromkeys(dishes))
        said = [t for t in tags if t.kind in ATTRIBUTES]
        index = self._target(lines, ref, named, _marks(said, remove))
        if isinstance(index, NotHeld):
            return index
        if remove and not any(t.kind in ("option", "style") for t in said):
            if index is None:  # sizes and containers only say which line: "the large pizza"
                return NotHeld(f"any {self.menu.item(named[0]).plural}") if named else None
            return LineEdit(index, None)
        return self._change(text, lines, index, named, tags, change, remove)

    def within_limits(self, cart: list[dict[str, Any]], lines: list[dict[str, Any]]
                      ) -> tuple[list[dict[str, Any]], OverLimit | None]:
        """The new lines that keep each dish within its limit for the whole order, and the
        first refusal: 'at most 20 pizzas per order' holds however the pizzas are split."""
        totals = Counter[str]()
        for held in cart:
            totals[held["item_id"]] += held["quantity"]
        kept, refused = [], None
        for line in lines:
            item_id, most = line["item_id"], self.menu.limit_for(line["item_id"])
            if totals[item_id] + line["quantity"] > most:
                refused = refused or OverLimit(self.menu.item(item_id).plural, most)
                continue
            totals[item_id] += line["quantity"]
            kept.append(line)
        return kept, refused

    def _reference(self, words: list[str]) -> _Ref | None:
        """'the <ordinal>' and the dish right after it, if one is named."""
        for i in range(len(words) - 1):
            if words[i] == "the" and words[i + 1] in ORDINALS:
                after = self.lexicon.tag(" ".join(words[i + 2:i + 6]))
                item = after[0].value if after and after[0].kind == "item" else None
                return _Ref(ORDINALS[words[i + 1]], item, words[i + 1])
        return None

    def _target(self, lines: list[ParsedLine], ref: _Ref | None, named: list[str],
                marks: list[Tag]) -> int | NotHeld | None:
        """The line pointed at, the last line of a dish named that the cart holds (the one
        with the size or container said, if any: 'the large pizza'), or None."""
        if ref is not None:
            pool = [i for i, li in enumerate(lines) if ref.item_id in (None, li.item_id)]
            if not pool or ref.position >= len(pool):
                noun = self.menu.item(ref.item_id).name if ref.item_id else "one"
                return NotHeld(f"a {ref.ordinal} {noun}")
            return pool[ref.position]
        held = [n for n in named if any(li.item_id == n for li in lines)]
        if not held:
            return None
        pool = [i for i, li in enumerate(lines) if li.item_id == held[0]]
        marked = [i for i in pool if all(t.value in (lines[i].size, lines[i].container,
                                                     lines[i].volume) for t in marks)]
        return (marked or pool)[-1]

    def _change(self, text: str, lines: list[ParsedLine], index: int | None, named: list[str],
                tags: list[Tag], change: bool, remove: bool) -> Edit | None:
        """A new dish for the line ('make that a sprite'), or what was said merged into it."""
        parsed = self.parser.parse(text)
        if parsed.over_limit:
            item_id = parsed.over_limit[0].item_id
            return OverLimit(self.menu.item(item_id).plural, self.menu.limit_for(item_id))
        current = lines[index].item_id if index is not None else None
        other = next((li for li in parsed.lines if li.item_id in named and li.item_id != current),
                     None)
        said = [t for t in tags if t.kind in ATTRIBUTES]
        if other is not None and change:
            index = len(lines) - 1 if index is None else index
            return self._checked(lines, index, self._replace(lines[index], other, said))
        quantity = _quantity(tags)
        if not said and quantity is None:
            return None
        if index is None:
            index = self._fitting(lines, said)
        target = lines[index]
        item = self.menu.item(target.item_id)
        size = next((t.value for t in reversed(said) if t.kind == "size"), None)
        about = self._said_about(text, target, named)
        merged = _merge(target, _negated(about) if remove else about, size, quantity)
        return self._checked(lines, index, _with_unfit(merged, item, said))

    def _checked(self, lines: list[ParsedLine], index: int, line: ParsedLine) -> Edit:
        """The edit, unless it takes the dish over its limit for the whole order."""
        most = self.menu.limit_for(line.item_id)
        others = sum(li.quantity for i, li in enumerate(lines)
                     if i != index and li.item_id == line.item_id)
        if others + line.quantity > most:
            return OverLimit(self.menu.item(line.item_id).plural, most)
        return LineEdit(index, cart_line(line))

    def _said_about(self, text: str, target: ParsedLine, named: list[str]) -> ParsedLine:
        """What `text` says about the target's dish, read as if it were named first."""
        if target.item_id not in named:
            text = f"{self.menu.item(target.item_id).name} {text}"
        mine = [li for li in self.parser.parse(text).lines if li.item_id == target.item_id]
        return ParsedLine(
            target.item_id, 1, None, tuple(m for li in mine for m in li.modifiers),
            tuple(s for li in mine for s in li.styles),
            tuple(s for li in mine for s in li.removed_styles),
            tuple(d for li in mine for d in li.declined),
            next((li.container for li in mine if li.container), None),
            next((li.volume for li in mine if li.volume), None))

    def _replace(self, target: ParsedLine, other: ParsedLine, said: list[Tag]) -> ParsedLine:
        """The new dish, keeping the old line's quantity, size and container where they fit."""
        item = self.menu.item(other.item_id)
        size_said = any(t.kind == "size" and t.value in item.sizes for t in said)
        return replace(
            other,
            quantity=other.quantity if other.quantity > 1 else target.quantity,
            size=other.size if size_said or target.size not in item.sizes else target.size,
            container=other.container or (
                target.container if target.container in item.containers else None),
            volume=other.volume or (target.volume if target.volume in item.volumes else None))

    def _fitting(self, lines: list[ParsedLine], said: list[Tag]) -> int:
        """The last line holding every option said ('forget the onions'), else the last that
        can take every attribute said ('make it large'), else the last line."""
        options = {t.value for t in said if t.kind == "option"}
        for fits in (lambda li: bool(options) and options <= {o for _, o in li.modifiers},
                     lambda li: all(_accepts(self.menu.item(li.item_id), t) for t in said)):
            for i in range(len(lines) - 1, -1, -1):
                if fits(lines[i]):
                    return i
        return len(lines) - 1


def _addition_at(tags: list[Tag]) -> int | None:
    """Where '... and add a coke' starts: an 'and' followed by a counted dish."""
    for i, t in enumerate(tags):
        if t.kind != JOINER or t.value != "and":
            continue
        rest = tags[i + 1:]
        first = next((j for j, r in enumerate(rest) if r.kind == "item"), None)
        if first is not None and any(r.kind == NUMBER for r in rest[:first]):
            return i
    return None


def _marks(said: list[Tag], remove: bool) -> list[Tag]:
    """Attributes that say which line is meant: for a removal every size and container; for a
    change only a size before the new one ('make the large pizza a small')."""
    if remove:
        return [t for t in said if t.kind in ("size", "container", "volume")]
    sizes = [t for t in said if t.kind == "size"]
    return sizes[:-1]


def _quantity(tags: list[Tag]) -> int | None:
    """A quantity said outright ('make that two'); not an article, not 'the second one'."""
    for i, t in enumerate(tags):
        if t.kind != NUMBER or t.text in _NOT_QUANTITIES:
            continue
        before = tags[i - 1] if i else None
        if t.text == "one" and before is not None and (
                before.text in ORDINALS or before.kind in ATTRIBUTES):
            continue  # "the second one", "a large one": a pronoun
        return int(t.value)
    return None


def _merge(target: ParsedLine, said: ParsedLine, size: str | None,
           quantity: int | None) -> ParsedLine:
    """The target with what was said applied: a later wish about an option replaces an earlier one."""
    mods = list(target.modifiers)
    for kind, option in said.modifiers:
        had = [k for k, o in mods if o == option]
        mods = [(k, o) for k, o in mods if o != option]
        if had and (kind == "remove") != (had[0] == "remove"):
            continue  # "no onions" after "with onions" (or back): the earlier wish just goes
        mods.append((kind, option))
    declined = list(target.declined)
    for q, option in said.declined:
        if (q, option) in mods:  # "no extra cheese" after "extra cheese": the extra just goes
            mods.remove((q, option))
        elif (q, option) not in declined:
            declined.append((q, option))
    styles = [s for s in target.styles if s not in said.removed_styles]
    removed = [s for s in target.removed_styles if s not in said.styles]
    return replace(
        target, quantity=quantity or target.quantity, size=size or target.size,
        modifiers=tuple(dict.fromkeys(mods)),
        styles=tuple(dict.fromkeys([*styles, *said.styles])),
        removed_styles=tuple(dict.fromkeys([*removed, *said.removed_styles])),
        declined=tuple(declined), container=said.container or target.container,
        volume=said.volume or target.volume)


def _negated(said: ParsedLine) -> ParsedLine:
    """After a removal cue ('forget the onions') every option and style said is taken off."""
    plain = tuple(("remove", o) for k, o in said.modifiers if k in ("add", "remove"))
    qualified = tuple((k, o) for k, o in said.modifiers if k not in ("add", "remove"))
    return replace(said, modifiers=plain, declined=(*said.declined, *qualified), styles=(),
                   removed_styles=(*said.removed_styles, *said.styles))


def _with_unfit(line: ParsedLine, item: MenuItem, said: list[Tag]) -> ParsedLine:
    """Keep the first attribute the dish cannot take, so the cart tool refuses it by name."""
    t = next((t for t in said if not _accepts(item, t)), None)
    if t is None:
        return line
    if t.kind == "size":
        return replace(line, size=t.value)
    if t.kind == "style":
        return replace(line, styles=(*line.styles, t.value))
    if t.kind == "option":
        return replace(line, modifiers=(*line.modifiers, ("add", t.value)))
    return replace(line, **{t.kind: t.value})


def _accepts(item: MenuItem, t: Tag) -> bool:
    field_of = {"size": list(item.sizes), "style": item.styles, "option": item.options,
                "container": item.containers, "volume": item.volumes}
    return t.value in field_of.get(t.kind, [])
