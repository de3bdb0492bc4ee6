"""Slot values: read from what a caller said, checked, and said back.

Pure and deterministic: the call's local `now` is passed in, nothing reads a clock. With
`bare=False` only explicit cues count ("for four", "at 7 pm", "my name is Ann"); `bare=True`
is used for the slot that was just asked for, where "four" or "Ann Lee" alone is an answer.
Order lines are read by the menu-grounded `OrderParser`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from appliance.dialog.cart_lines import cart_line
from appliance.dialog.number_words import TENS, UNITS
from appliance.dialog.order_parser import OrderParser, ParseResult
from blueprints.menu import Menu

SlotValue = int | str | dt.date | dt.time | list[dict[str, Any]]

_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_MONTH_RE = "|".join(m for m in _MONTHS) + "|" + "|".join(m[:3] for m in _MONTHS if m != "may")
_DIGIT_WORDS = {"oh": "0", "o": "0", **{w: str(n) for w, n in UNITS.items() if n < 10}}
# Words that are never (part of) a person's name, so "yes" is not taken as one.
_NOT_NAMES = set("""
yes yeah yep no nope ok okay sure please thanks thank you hi hello hey um uh er so well
that's it is the a an for at on in to my name is and table book booking reservation today
tonight tomorrow people person pm am i i'm its it's this that right correct fine great
""".split())
_NAME_CUE = re.compile(
    r"\b(?:my name is|my name's|the name is|the name's|name is|name's|under the name(?: of)?"
    r"|put it under|book it under|booked under|it's under|under)\s+(.+)$")
_NAME_LEAD = re.compile(r"^(?:(?:yes|yeah|sure|ok|okay|so|um|uh|hi|hello)\s+)*"
                        r"(?:it's|it is|this is|i'm|i am|call me|name's|the name's)?\s*")


def normalize(text: str) -> str:
    """Lower case, 'p.m.' -> 'pm', '7pm' -> '7 pm', number words -> digits, single spaces."""
    t = text.lower().replace("\u2019", "'")
    t = re.sub(r"\b([ap])\.?\s?m\b\.?", r"\1m", t)
    t = re.sub(r"(\d)(am|pm)\b", r"\1 \2", t)
    t = re.sub(r"(\d)\.(\d\d)\b", r"\1:\2", t)
    t = re.sub(r"[^a-z0-9': ]+", " ", t)
    return " ".join(_words_to_digits(t.split()))


def _words_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in TENS and (nxt in _ORDINALS and _ORDINALS[nxt] < 10):
            out.append(f"{TENS[w] + _ORDINALS[nxt]}th")
            i += 2
            continue
        if w in TENS and nxt in UNITS and 0 < UNITS[nxt] < 10:
            out.append(str(TENS[w] + UNITS[nxt]))
            i += 2
            continue
        if w in _ORDINALS:
            out.append(f"{_ORDINALS[w]}th")
        elif w in TENS:
            out.append(str(TENS[w]))
        elif w in UNITS:
            out.append(str(UNITS[w]))
        else:
            out.append(w)
        i += 1
    return out


@dataclass
class Heard:
    """What one utterance said for the slots of an intent, including what cannot be taken."""

    found: dict[str, SlotValue] = field(default_factory=dict)
    unknown: tuple[str, str] | None = None  # (slot, thing) named but not offered
    over_limit: tuple[str, str, int] | None = None  # (slot, thing, most one order may hold)
    repaired: list[str] = field(default_factory=list)  # what sound-alikes were understood as


class SlotReader:
    """Reads slot values of every type; built once per blueprint (the menu, if it has one)."""

    def __init__(self, menu: Menu | None) -> None:
        self._parser = OrderParser(menu) if menu is not None else None

    def read(self, kind: str, text: str, now: dt.datetime,
             bare: bool = False) -> tuple[SlotValue | None, str | None]:
        """(value or None, the first thing named that does not exist, e.g. an off-menu dish)."""
        if kind != "order_lines":
            return extract(kind, text, now, bare), None
        if self._parser is None:
            return None, None
        parsed = self._parser.parse(text)
        lines = [cart_line(li) for li in parsed.lines]
        return lines or None, parsed.unknown[0] if parsed.unknown else None

    def hear(self, kinds: dict[str, str], expected: str | None, text: str,
             now: dt.datetime) -> Heard:
        """Values per slot (name -> type), off-menu mentions, refused quantities, repairs.

        Cued values first; only if there are none is the utterance read bare as an answer
        to the `expected` slot ("four" after "for how many people?").
        """
        heard = Heard()
        for name, kind in kinds.items():
            if kind == "order_lines" and self._parser is not None:
                self._hear_lines(name, self._parser.parse(text), heard)
                continue
            value, _ = self.read(kind, text, now)
            if value is not None:
                heard.found[name] = value
        if not heard.found and heard.unknown is None and heard.over_limit is None and expected:
            value, _ = self.read(kinds[expected], text, now, bare=True)
            if value is not None:
                heard.found[expected] = value
        return heard

    def _hear_lines(self, name: str, parsed: ParseResult, heard: Heard) -> None:
        if parsed.lines:
            heard.found[name] = [cart_line(li) for li in parsed.lines]
            heard.repaired += [understood for _, understood in parsed.repaired]
        if parsed.unknown and heard.unknown is None:
            heard.unknown = (name, parsed.unknown[0])
        if parsed.over_limit and heard.over_limit is None and self._parser is not None:
            menu, item_id = self._parser.menu, parsed.over_limit[0].item_id
            heard.over_limit = (name, menu.item(item_id).plural, menu.limit_for(item_id))

    def read_all(self, kinds: dict[str, str], expected: str | None, text: str,
                 now: dt.datetime) -> tuple[dict[str, SlotValue], tuple[str, str] | None]:
        """Values per slot and (slot, thing) for a thing that does not exist (see `hear`)."""
        heard = self.hear(kinds, expected, text, now)
        return heard.found, heard.unknown


def in_range(value: int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def not_past(value: dt.date | dt.time, day: dt.date | None, now: dt.datetime) -> bool:
    """A date from today on, or a time on `day` not before `now` (local)."""
    if isinstance(value, dt.date):
        return value >= now.date()
    return day is None or day > now.date() or (day == now.date() and value >= now.time())


def extract(kind: str, text: str, now: dt.datetime, bare: bool = False) -> SlotValue | None:
    """The value of a `kind` slot in `text`, or None; `now` is the call's local time."""
    t = normalize(text)
    if kind == "party_size":
        return party_size(t, bare)
    if kind == "date":
        return date(t, now.date(), bare)
    if kind == "time":
        return time(t, bare)
    if kind == "name":
        return name(t, bare)
    if kind == "phone":
        return phone(t, bare)
    if kind == "free_text":
        return (text.strip() or None) if bare else None
    raise ValueError(f"no extractor for slot type {kind!r}")


def party_size(t: str, bare: bool) -> int | None:
    """'table for four', 'party of 6', 'five people'; a lone number when it was asked for."""
    for pattern in (r"\b(?:table|booking|reservation|party|group) (?:for|of) (\d+)\b",
                    r"\b(\d+) (?:people|persons|person|guests|adults|diners|of us)\b",
                    r"\bfor (\d+)\b(?! ?(?:am|pm|o'clock|:|\d))"):
        m = re.search(pattern, t)
        if m:
            return int(m.group(1))
    if re.search(r"\b(?:just|only) (?:me|myself)\b", t):
        return 1
    if bare:
        numbers = re.findall(r"\b\d+\b(?! ?(?:am|pm|:))", t)
        if len(numbers) == 1:
            return int(numbers[0])
    return None


def date(t: str, today: dt.date, bare: bool) -> dt.date | None:
    """'today', 'tomorrow', 'friday', 'november 25th', 'the 3rd'; relative to `today`."""
    if "day after tomorrow" in t:
        return today + dt.timedelta(days=2)
    for word, days in (("tomorrow", 1), ("yesterday", -1), ("today", 0), ("tonight", 0),
                       ("this evening", 0)):
        if re.search(rf"\b{word}\b", t):
            return today + dt.timedelta(days=days)
    m = re.search(r"\b(?:(next|this|on) )?(" + "|".join(_WEEKDAYS) + r")s?\b", t)
    if m:
        ahead = (_WEEKDAYS.index(m.group(2)) - today.weekday()) % 7
        return today + dt.timedelta(days=ahead or (7 if m.group(1) == "next" else 0))
    m = (re.search(rf"\b({_MONTH_RE}) (?:the )?(\d{{1,2}})(?:st|nd|rd|th)?\b", t)
         or re.search(rf"\b(?:the )?(\d{{1,2}})(?:st|nd|rd|th)? of ({_MONTH_RE})\b", t))
    if m:
        month_word, day = (m.group(1), m.group(2)) if not m.group(1).isdigit() else (
            m.group(2), m.group(1))
        month = next(i for i, name in enumerate(_MONTHS, 1) if name.startswith(month_word))
        return _upcoming(today, month, int(day))
    m = re.search(r"\bthe (\d{1,2})(?:st|nd|rd|th)\b", t) or (
        re.search(r"\b(\d{1,2})(?:st|nd|rd|th)\b", t) if bare else None)
    if m:
        day = int(m.group(1))
        month = today.month if day >= today.day else today.month % 12 + 1
        return _upcoming(today, month, day)
    return None


def _upcoming(today: dt.date, month: int, day: int) -> dt.date | None:
    """That month and day this year, or next year once it has passed; None if no such day."""
    for year in (today.year, today.year + 1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            return None
        if candidate >= today:
            return candidate
    return None


def time(t: str, bare: bool) -> dt.time | None:
    """'7 pm', '7:30', 'half past seven', 'at 8', 'noon'; an hour without am/pm is evening."""
    if re.search(r"\b(?:noon|midday)\b", t):
        return dt.time(12, 0)
    m = re.search(r"\b(half|quarter) (past|to) (\d{1,2})\b", t)
    if m:
        minutes = 30 if m.group(1) == "half" else 15
        hour = int(m.group(3)) - (1 if m.group(2) == "to" else 0)
        minute = minutes if m.group(2) == "past" else 60 - minutes
        return _clock(hour, minute, _meridiem(t, m.end()))
    m = re.search(r"\b(\d{1,2})(?:(?::| )(\d\d))? (am|pm)\b", t)
    if m:
        return _clock(int(m.group(1)), int(m.group(2) or 0), m.group(3))
    m = (re.search(r"\b(\d{1,2}):(\d\d)\b", t)
         or re.search(r"\b(?:at|around|about|by) (\d{1,2})(?: (\d\d))?(?! ?(?:people|persons|guests))\b", t)
         or re.search(r"\b(\d{1,2})(?: (\d\d))? o'clock\b", t))
    if m is None and bare:
        m = re.fullmatch(r"\D*?\b(\d{1,2})(?:[: ](\d\d))?\b\D*", t)
    if m:
        return _clock(int(m.group(1)), int(m.group(2) or 0), None)
    return None


def _meridiem(t: str, after: int) -> str | None:
    m = re.match(r" (am|pm)\b", t[after:])
    return m.group(1) if m else None


def _clock(hour: int, minute: int, meridiem: str | None) -> dt.time | None:
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    elif meridiem is None and 1 <= hour <= 10:
        hour += 12  # a table "at 7" is an evening table
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return dt.time(hour, minute)


def name(t: str, bare: bool) -> str | None:
    """'my name is Ann Lee', 'under Lee'; the whole answer when the name was asked for."""
    m = _NAME_CUE.search(t)
    if m:
        return _name_words(m.group(1))
    if bare:
        return _name_words(_NAME_LEAD.sub("", t, count=1))
    return None


def _name_words(rest: str) -> str | None:
    words: list[str] = []
    for w in rest.split():
        if w in ("please", "thanks", "thank", "for", "at", "on", "and") or not re.fullmatch(
                r"[a-z][a-z'-]*", w):
            break
        words.append(w)
    if not words or len(words) > 4 or all(w in _NOT_NAMES for w in words):
        return None
    return " ".join(re.sub(r"(^|['-])([a-z])", lambda m: m.group(1) + m.group(2).upper(), w)
                    for w in words)


def phone(t: str, bare: bool) -> str | None:
    """Seven to fifteen digits, said as digits or digit words, after a cue or when asked."""
    m = re.search(r"\b(?:number is|number's|reach me (?:at|on)|call me (?:at|on)|phone is)\s+(.+)$", t)
    rest = m.group(1) if m else (t if bare else "")
    digits = "".join(_DIGIT_WORDS.get(w, w) for w in rest.split() if w.isdigit() or w in _DIGIT_WORDS)
    return digits if 7 <= len(digits) <= 15 else None


def speak(kind: str, value: object) -> str:
    """A slot value as the agent says it: 'four', 'Wednesday, November 25th', '7:30 pm'."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        words = {v: k for k, v in UNITS.items()} if kind == "party_size" else {}
        return words.get(value, str(value))
    if isinstance(value, dt.datetime):
        return f"{speak('date', value.date())} at {speak('time', value.time())}"
    if isinstance(value, dt.date):
        return f"{_WEEKDAYS[value.weekday()].title()}, {_MONTHS[value.month - 1].title()} " \
               f"{value.day}{_ordinal_suffix(value.day)}"
    if isinstance(value, dt.time):
        if value == dt.time(12, 0):
            return "noon"
        hour = value.hour % 12 or 12
        clock = f"{hour}" if value.minute == 0 else f"{hour}:{value.minute:02d}"
        return f"{clock} {'pm' if value.hour >= 12 else 'am'}"
    if kind == "phone" and isinstance(value, str):
        return " ".join(value)
    if isinstance(value, list):
        return f"{len(value)} {'line' if len(value) == 1 else 'lines'}"
    return str(value)


def _ordinal_suffix(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
