"""The Whisper prompt for a menu: the words a caller will say, so decoding leans toward them.

Built from the menu (never from test sentences), for tenants whose blueprint has no
hand-written `asr_hints` and for the benchmarks' PIZZA overlay. Whisper reads at most 223
prompt tokens, so the prompt names every menu *word* once rather than every phrase
("roasted red peppers" adds nothing after "roasted garlic" and "red peppers"), most useful
first: one-word names (sizes, styles, dishes and drinks, toppings), then longer names in the
same order; what does not fit is the least useful. It ends with the closing replies as
whole sentences: Whisper carries on in the style of the prompt's end.
"""

from __future__ import annotations

import re

from blueprints.menu import Menu

CLOSING = "No, that's all. Yes."
# Whisper reads 223 prompt tokens; menu words run ~3.25 characters a token. The prompt must
# end as written (a cut list makes Whisper answer in a lower-case, unpunctuated list).
MAX_PROMPT_CHARS = 700


def _words(phrase: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", phrase.lower())


def menu_phrases(menu: Menu) -> list[str]:
    """Menu phrases in prompt order, each kept only if it brings a word not said before."""
    sizes = [menu.size(s).name for s in dict.fromkeys(
        [*menu.sizes, *(s for i in menu.items for s in i.sizes)])]
    items = [i.name for i in menu.items]
    options = [o.name for o in menu.options.values()]
    styles = [s.name for s in menu.styles.values()]
    containers = [c.name for c in menu.containers.values()]
    seen: set[str] = set()
    out: list[str] = []
    groups = [sizes, styles, items, options, containers]
    # One-word names of every group first: the plain toppings ('ham', 'olives') are ordered
    # far more than their qualified variants ('kalamata olive'), which add a word each.
    ranked = sorted(((len(_words(p)) > 1, g, p) for g, group in enumerate(groups) for p in group),
                    key=lambda r: r[:2])
    for _, _, phrase in ranked:
        words = _words(phrase)
        if words and not set(words) <= seen:
            out.append(" ".join(words))
            seen.update(words)
    return out


def menu_prompt(menu: Menu, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """One line, "Order: <menu phrases>. No, that's all. Yes.", at most `max_chars` long."""
    room = max_chars - len("Order: . ") - len(CLOSING)
    kept: list[str] = []
    for phrase in menu_phrases(menu):
        room -= len(phrase) + 2
        if room < 0:
            break
        kept.append(phrase)
    return "Order: " + ", ".join(kept) + ". " + CLOSING
