"""The kitchen ticket reads right at arm's length: number, time, items, shouted removals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from appliance.edge.ticket_layout import (
    TicketLine,
    item_text,
    layout_slip,
    layout_ticket,
    ticket_text,
)
from sync.contracts.order import LineModifier, Order, OrderLine

AMSTERDAM_WINTER = timezone(timedelta(hours=1))


def _order(**overrides: object) -> Order:
    fields: dict[str, object] = {
        "order_id": "ord_01JDEM0000000000000000ORD1",
        "tenant_id": "ten_01JDEM0000000000000000DEMO",
        "device_id": "dev_01JDEM0000000000000000BOX1",
        "call_id": "call_01JDEM000000000000000CALL",
        "number": 42,
        "caller": "+31201234567",
        "lines": [
            OrderLine(
                line_id="l1", item_id="pepperoni", name="Pepperoni pizza", quantity=2,
                size="large", unit_price_cents=1450, notes="well done",
                modifiers=[LineModifier(kind="remove", name="onions"),
                           LineModifier(kind="extra", name="cheese"),
                           LineModifier(kind="add", name="olives"),
                           LineModifier(kind="light", name="sauce")],
            ),
            OrderLine(line_id="l2", item_id="cola", name="Cola", quantity=1, unit_price_cents=250),
        ],
        "total_cents": 3150,
        "currency": "EUR",
        "blueprint_hash": "sha256:abc",
        "created_at": datetime(2025, 1, 10, 18, 7, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return Order.model_validate(fields)


def _find(lines: list[TicketLine], text: str) -> TicketLine:
    matches = [line for line in lines if line.text == text]
    assert matches, f"{text!r} not on the ticket:\n{ticket_text(lines)}"
    return matches[0]


def test_header_is_big_number_local_time_and_caller() -> None:
    lines = layout_ticket(_order(), AMSTERDAM_WINTER)
    assert lines[0] == TicketLine("ORDER #42", bold=True, double=True, align="center")
    assert lines[1] == TicketLine("19:07", bold=True, double=True, align="center")
    assert lines[2] == TicketLine("CALLER +31201234567", align="center")


def test_time_follows_the_given_zone() -> None:
    assert layout_ticket(_order(), UTC)[1].text == "18:07"


def test_item_line_reads_quantity_size_and_name_in_capitals() -> None:
    lines = layout_ticket(_order(), UTC)
    item = _find(lines, "2x LARGE PEPPERONI PIZZA")
    assert item.bold and item.tall and not item.double
    assert _find(lines, "1x COLA").bold


def test_size_already_in_the_name_is_not_repeated() -> None:
    line = OrderLine(line_id="l", item_id="m", name="Large margherita", size="large",
                     quantity=3, unit_price_cents=900)
    assert item_text(line) == "3x LARGE MARGHERITA"


def test_modifiers_sit_indented_under_their_item_and_removals_shout() -> None:
    lines = layout_ticket(_order(), UTC)
    texts = [line.text for line in lines]
    start = texts.index("2x LARGE PEPPERONI PIZZA")
    assert texts[start + 1:start + 6] == [
        "  ** NO ONIONS **", "  + EXTRA CHEESE", "  + OLIVES", "  ~ LIGHT SAUCE",
        "  NOTE: well done",
    ]
    removal = lines[start + 1]
    assert removal.bold and removal.tall
    assert lines[start + 2].bold and not lines[start + 2].tall


def test_footer_counts_items_and_names_the_order() -> None:
    lines = layout_ticket(_order(), UTC)
    assert _find(lines, "3 ITEMS").bold
    assert lines[-1] == TicketLine("ord_01JDEM0000000000000000ORD1", align="center")


def test_no_caller_no_caller_line_and_cancelled_is_flagged() -> None:
    lines = layout_ticket(_order(caller=None, status="cancelled"), UTC)
    assert not any(line.text.startswith("CALLER") for line in lines)
    assert _find(lines, "*** CANCELLED ***").double


@pytest.mark.parametrize("columns", [32, 42, 48])
def test_every_line_fits_the_paper(columns: int) -> None:
    long_line = OrderLine(
        line_id="l3", item_id="special", quantity=12, unit_price_cents=100,
        name="Extraordinarily long house special calzone with everything on it",
        modifiers=[LineModifier(kind="remove", name="pickled jalapenos and green peppers")],
        notes="ring the bell twice when it is ready because the driver waits outside",
    )
    lines = layout_ticket(_order(lines=[long_line]), UTC, columns=columns)
    for line in lines:
        assert len(line.text) <= (columns // 2 if line.double else columns), line
    item_rows = [line.text for line in lines if line.tall and line.text.lstrip()[:1] != "*"]
    assert item_rows[0].startswith("12x EXTRAORDINARILY")
    assert all(row.startswith("   ") for row in item_rows[1:])
    assert "JALAPENOS" in ticket_text(lines)


def test_too_narrow_paper_is_refused() -> None:
    with pytest.raises(ValueError):
        layout_ticket(_order(), UTC, columns=10)


def test_styles_refusals_and_drinks_from_the_order_line_fields() -> None:
    pizza = OrderLine(
        line_id="l1", item_id="pizza", name="medium pizza", size="medium", quantity=1,
        unit_price_cents=1599, styles=["gluten free crust"], removed_styles=["thin crust"],
        declined=[LineModifier(kind="extra", name="cheese")],
        modifiers=[LineModifier(kind="remove", name="onions")],
        notes="no extra cheese; not thin crust; cut in squares")
    coke = OrderLine(line_id="l2", item_id="coke", name="coke", quantity=2, unit_price_cents=249,
                     container="can", volume="330 ml", notes="in cans")
    lines = layout_ticket(_order(lines=[pizza, coke]), UTC)
    texts = [line.text for line in lines]
    start = texts.index("1x MEDIUM PIZZA")
    assert texts[start + 1:start + 6] == [
        "  GLUTEN FREE CRUST", "  ** NO ONIONS **", "  ** NO EXTRA CHEESE **",
        "  ** NOT THIN CRUST **", "  NOTE: cut in squares"]
    for shouted in texts[start + 2:start + 5]:
        assert _find(lines, shouted).tall and _find(lines, shouted).bold
    start = texts.index("2x COKE")
    assert texts[start + 1:start + 4] == ["  IN CAN", "  330 ML", ""]  # "in cans" is not repeated


def test_a_style_the_name_already_says_is_not_repeated() -> None:
    line = OrderLine(line_id="l", item_id="pizza", name="large thin crust pizza", size="large",
                     quantity=1, unit_price_cents=1699, styles=["thin crust"])
    texts = ticket_text(layout_ticket(_order(lines=[line]), UTC)).splitlines()
    assert "1x LARGE THIN CRUST PIZZA" in texts and "  THIN CRUST" not in texts


def test_handover_slip_shouts_the_title_and_leads_with_who_to_call() -> None:
    heard = 'Heard: "' + "a large pepperoni without onions and " * 3 + '"'
    lines = layout_slip("Call back", ["CALL BACK / TRANSFER: +31201234567",
                                      "Why: caller asked for a person", heard],
                        datetime(2025, 1, 10, 18, 7, tzinfo=UTC), AMSTERDAM_WINTER, columns=42)

    assert lines[0] == TicketLine("CALL BACK", bold=True, double=True, align="center")
    assert lines[1] == TicketLine("19:07", bold=True, double=True, align="center")
    assert lines[3] == TicketLine("CALL BACK / TRANSFER: +31201234567", bold=True, tall=True)
    assert lines[4].text == "Why: caller asked for a person" and not lines[4].bold
    assert all(len(line.text) <= 42 for line in lines)
    assert "without onions" in ticket_text(lines) and lines[-1].text == "-" * 42


# -- headers of tickets that are not the order's plain first one --------------------------


def test_reprint_and_amended_headers_sit_above_the_number() -> None:
    from appliance.store.print_tickets import TicketMark

    reprint = layout_ticket(_order(), UTC, mark=TicketMark.REPRINT)
    assert [line.text for line in reprint[:2]] == ["REPRINT", "ORDER #42"]
    assert reprint[0].double and reprint[0].bold
    amended = ticket_text(layout_ticket(_order(), UTC, mark=TicketMark.AMENDED)).splitlines()
    assert amended[:2] == ["AMENDED - replaces #42", "ORDER #42"]
    assert "2x LARGE PEPPERONI PIZZA" in amended and "** NO ONIONS **" in "\n".join(amended)


def test_a_ticket_that_may_already_be_out_says_check_for_a_duplicate() -> None:
    from appliance.store.print_tickets import TicketMark

    for mark in (None, TicketMark.REPRINT):
        lines = layout_ticket(_order(), UTC, mark=mark, may_have_printed=True)
        assert lines[0].text == "REPRINT - check for a duplicate" and lines[0].bold
        assert lines[1].text == "ORDER #42"
    plain = layout_ticket(_order(), UTC)
    assert plain[0].text == "ORDER #42"


def test_cancelled_ticket_names_the_order_and_what_not_to_make() -> None:
    from appliance.store.print_tickets import TicketMark

    lines = layout_ticket(_order(), UTC, mark=TicketMark.CANCELLED)
    texts = [line.text for line in lines]
    assert texts[:3] == ["CANCELLED", "ORDER #42", "18:07"]
    assert lines[0].double and lines[1].double
    assert "DO NOT MAKE:" in texts and "  2x LARGE PEPPERONI PIZZA" in texts
    assert "CALLER +31201234567" in texts
    assert not any("NO ONIONS" in t for t in texts)  # what to stop, not how it was built
