"""A warm handover reaches the kitchen printer: slip queue -> print agent -> ESC/POS -> emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.print_agent import PrintAgent
from appliance.edge.printer_emulator import BackgroundEmulator, PrinterEmulator
from appliance.edge.ticket_printer import PrinterCondition
from appliance.store.local_store import LocalStore
from tests.integration.test_print_agent import submit
from tests.integration.test_refer_handover import call_with_handover

T0 = datetime(2025, 5, 2, 17, 45, tzinfo=UTC)
LINES = ["CALL BACK / TRANSFER: +31201234567", "Why: caller asked for a person",
         'Heard: "a large pepperoni without onions"']


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[tuple[PrinterEmulator, EscposTicketPrinter]]:
    with BackgroundEmulator(PrinterEmulator(tmp_path / "tickets", port=0)) as emulator:
        driver = EscposTicketPrinter(emulator.url, timeout_s=2.0, tz=UTC)
        yield emulator, driver
        driver.close()


def test_slip_is_printed_exactly_once(
        tmp_path: Path, printer: tuple[PrinterEmulator, EscposTicketPrinter]) -> None:
    emulator, driver = printer
    store = LocalStore(tmp_path / "box.sqlite3")
    slip, created = store.queue_slip(kind="handover", title="CALL BACK", lines=LINES,
                                     idempotency_key="call-1:handover", now=T0, call_id="call-1")
    again, created_again = store.queue_slip(kind="handover", title="CALL BACK", lines=["other"],
                                            idempotency_key="call-1:handover", now=T0)
    assert created and not created_again and again.slip_id == slip.slip_id
    agent = PrintAgent(store, driver, "kitchen")

    assert agent.run_once(T0) == 1
    assert agent.run_once(T0 + timedelta(seconds=1)) == 0

    (printed,) = emulator.tickets
    assert printed.lines[0].text == "CALL BACK" and printed.lines[0].double
    assert "17:45" in printed.text
    for line in LINES:
        assert line in printed.text
    assert store.slips("pending") == [] and [s.slip_id for s in store.slips("succeeded")] == [
        slip.slip_id]
    store.close()


def test_slip_prints_after_the_tickets_and_waits_for_paper(
        tmp_path: Path, printer: tuple[PrinterEmulator, EscposTicketPrinter]) -> None:
    emulator, driver = printer
    store = LocalStore(tmp_path / "box.sqlite3")
    store.queue_slip(kind="handover", title="HANDOVER", lines=LINES,
                     idempotency_key="call-2:handover", now=T0)
    order = submit(store, "call-1")
    agent = PrintAgent(store, driver, "kitchen")

    emulator.condition = PrinterCondition.PAPER_OUT
    assert agent.run_once(T0) == 0
    assert [s.attempts for s in store.slips("pending")] == [0]  # not even claimed
    emulator.condition = PrinterCondition.READY
    assert agent.run_once(T0 + timedelta(seconds=5)) == 2

    ticket, slip = emulator.tickets
    assert f"ORDER #{order.number}" in ticket.text and slip.lines[0].text == "HANDOVER"
    assert agent.run_once(T0 + timedelta(seconds=6)) == 0
    assert len(emulator.tickets) == 2
    store.close()


def test_refused_transfer_queues_a_call_back_slip_that_prints(
        tmp_path: Path, printer: tuple[PrinterEmulator, EscposTicketPrinter]) -> None:
    emulator, driver = printer
    store, tools, session, _ = call_with_handover(tmp_path, "603")
    [slip] = store.slips("pending")
    assert slip.idempotency_key == f"{session.call.call_id}:handover" and slip.title == "CALL BACK"
    assert session.handover is not None and slip.lines[:len(session.handover.lines())] == (
        session.handover.lines())
    assert "Transfer: refused" in slip.lines

    assert PrintAgent(store, driver, "kitchen").run_once(datetime.now(UTC)) == 1
    (printed,) = emulator.tickets
    assert "CALL BACK" in printed.text and "Why: caller asked for a person" in printed.text
    tools.book.close()
    store.close()
