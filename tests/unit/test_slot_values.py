import datetime as dt

import pytest

from appliance.dialog.slot_values import SlotReader, extract, in_range, not_past, speak
from blueprints.engine import compose_builtin

NOW = dt.datetime(2026, 11, 24, 14, 0)  # a Tuesday afternoon, local time


@pytest.mark.parametrize(("kind", "text", "bare", "value"), [
    ("party_size", "I'd like to book a table for four tomorrow at 7 pm", False, 4),
    ("party_size", "a party of 40", False, 40),
    ("party_size", "there will be six of us", False, 6),
    ("party_size", "twenty five people", False, 25),
    ("party_size", "just me", False, 1),
    ("party_size", "four", True, 4),
    ("party_size", "four", False, None),
    ("party_size", "for 7 pm", False, None),
    ("date", "tomorrow", False, dt.date(2026, 11, 25)),
    ("date", "the day after tomorrow", False, dt.date(2026, 11, 26)),
    ("date", "tonight", False, dt.date(2026, 11, 24)),
    ("date", "yesterday", False, dt.date(2026, 11, 23)),
    ("date", "on Friday", False, dt.date(2026, 11, 27)),
    ("date", "next tuesday", False, dt.date(2026, 12, 1)),
    ("date", "December 3rd", False, dt.date(2026, 12, 3)),
    ("date", "the twenty fifth of december", False, dt.date(2026, 12, 25)),
    ("date", "November 2nd", False, dt.date(2027, 11, 2)),  # passed this year: next year's
    ("date", "the 30th", False, dt.date(2026, 11, 30)),
    ("date", "30th", True, dt.date(2026, 11, 30)),
    ("date", "February 30th", False, None),
    ("time", "at 7 pm", False, dt.time(19, 0)),
    ("time", "7pm", False, dt.time(19, 0)),
    ("time", "seven thirty p.m.", False, dt.time(19, 30)),
    ("time", "half past seven", False, dt.time(19, 30)),
    ("time", "quarter to eight", False, dt.time(19, 45)),
    ("time", "at 8", False, dt.time(20, 0)),
    ("time", "11 am", False, dt.time(11, 0)),
    ("time", "19:15", False, dt.time(19, 15)),
    ("time", "noon", False, dt.time(12, 0)),
    ("time", "8", True, dt.time(20, 0)),
    ("time", "8", False, None),
    ("name", "my name is Anna Smith", False, "Anna Smith"),
    ("name", "put it under O'Brien please", False, "O'Brien"),
    ("name", "Anna Smith", True, "Anna Smith"),
    ("name", "sure, it's Kim", True, "Kim"),
    ("name", "yes", True, None),
    ("name", "Anna Smith", False, None),
    ("phone", "my number is 555 123 4567", False, "5551234567"),
    ("phone", "five five five oh one two three", True, "5550123"),
    ("phone", "12", True, None),
    ("free_text", "  my invoice is wrong ", True, "my invoice is wrong"),
    ("free_text", "my invoice is wrong", False, None),
])
def test_extract(kind: str, text: str, bare: bool, value: object) -> None:
    assert extract(kind, text, NOW, bare) == value


def test_order_lines_are_read_by_the_menu_parser() -> None:
    reader = SlotReader(compose_builtin("restaurant_orders", "demo_pizza").menu)
    lines, unknown = reader.read("order_lines", "two cokes and a sushi roll", NOW)
    assert lines == [{"item_id": "coke", "quantity": 2, "size": None, "modifiers": []}]
    assert unknown == "sushi roll"
    assert SlotReader(None).read("order_lines", "two cokes", NOW) == (None, None)


def test_checks() -> None:
    assert in_range(12, 1, 12) and not in_range(40, 1, 12) and in_range(99, None, None)
    assert not_past(dt.date(2026, 11, 24), None, NOW)
    assert not not_past(dt.date(2026, 11, 23), None, NOW)
    assert not not_past(dt.time(13, 0), dt.date(2026, 11, 24), NOW)
    assert not_past(dt.time(13, 0), dt.date(2026, 11, 25), NOW)


@pytest.mark.parametrize(("kind", "value", "spoken"), [
    ("party_size", 4, "four"), ("party_size", 40, "40"), ("", 12, "12"),
    ("date", dt.date(2026, 11, 22), "Sunday, November 22nd"),
    ("time", dt.time(19, 0), "7 pm"), ("time", dt.time(9, 5), "9:05 am"),
    ("time", dt.time(12, 0), "noon"), ("phone", "5550123", "5 5 5 0 1 2 3"),
    ("name", "Kim", "Kim"),
])
def test_speak(kind: str, value: object, spoken: str) -> None:
    assert speak(kind, value) == spoken
