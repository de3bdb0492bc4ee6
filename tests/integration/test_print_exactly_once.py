"""Exactly-once kitchen tickets with the printer's cut counter as the commit point, against
the real emulator over TCP and over a socat pty serial line: a ticket left `printing` is
settled by the counter, paper running out mid-ticket loses nothing, and a printer without
a counter reprints marked for a duplicate check.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.print_agent import PrintAgent
from appliance.edge.printer_emulator import BackgroundEmulator, PrinterEmulator
from appliance.edge.ticket_printer import PrinterCondition
from appliance.store.local_store import LocalStore
from tests.integration.test_print_agent import T0, Rig, printed_events, socat_pair, submit


@contextlib.contextmanager
def make_rig(transport: str, tmp_path: Path, **emulator_options: object) -> Iterator[Rig]:
    store = LocalStore(tmp_path / "box.sqlite3")
    out = tmp_path / "tickets"
    with contextlib.ExitStack() as stack:
        if transport == "tcp":
            emulator = stack.enter_context(
                BackgroundEmulator(PrinterEmulator(out, port=0, **emulator_options)))  # type: ignore[arg-type]
            url = emulator.url
        else:
            printer_end, host_end = stack.enter_context(socat_pair(tmp_path))
            emulator = stack.enter_context(BackgroundEmulator(
                PrinterEmulator(out, serial_path=printer_end, **emulator_options)))  # type: ignore[arg-type]
            url = f"serial://{host_end}?baudrate=19200"
        driver = EscposTicketPrinter(url, timeout_s=2.0, tz=UTC)
        stack.callback(driver.close)
        yield Rig(store, emulator, driver, PrintAgent(store, driver, "kitchen"))
    store.close()


@pytest.fixture(params=["tcp", "serial"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def left_printing(rig: Rig, *, send: bool) -> int | None:
    """What a killed agent leaves: claimed, cut count recorded, printing; the bytes sent or not.
    Returns the recorded count."""
    [job] = rig.store.claim_print_jobs(T0)
    cuts = rig.driver.cut_count()
    assert rig.store.begin_print("ticket", job.action_id, cuts, T0)
    if send:
        rig.driver.print_ticket(job.order)
    assert rig.store.printing_ticket() is not None
    return cuts


def test_counter_advanced_means_the_ticket_came_out_and_is_not_reprinted(
        transport: str, tmp_path: Path) -> None:
    with make_rig(transport, tmp_path) as rig:
        order = submit(rig.store, "call-1")
        before = left_printing(rig, send=True)
        assert before == 0 and rig.emulator.cuts == 1
        assert rig.store.claim_print_jobs(T0) == []  # nothing else prints while in doubt

        assert rig.agent.run_once(T0 + timedelta(seconds=1)) == 1  # settled, not sent again
        assert rig.agent.run_once(T0 + timedelta(seconds=2)) == 0
        assert len(rig.emulator.tickets) == 1 and rig.emulator.cuts == 1
        assert rig.store.action_status(order.order_id) == "succeeded"
        assert printed_events(rig.store) == [(order.order_id, "kitchen")]


def test_counter_not_advanced_means_print_it_again_plainly(transport: str, tmp_path: Path) -> None:
    with make_rig(transport, tmp_path) as rig:
        order = submit(rig.store, "call-1")
        assert left_printing(rig, send=False) == 0

        assert rig.agent.run_once(T0 + timedelta(seconds=1)) == 1
        (ticket,) = rig.emulator.tickets
        assert ticket.lines[0].text == f"ORDER #{order.number}"  # no duplicate warning needed
        assert rig.emulator.cuts == 1
        assert rig.store.action_status(order.order_id) == "succeeded"
        assert printed_events(rig.store) == [(order.order_id, "kitchen")]


def test_paper_out_mid_ticket_holds_it_and_refill_prints_it_whole_once(
        transport: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with make_rig(transport, tmp_path, paper_lines=4) as rig:
        order = submit(rig.store, "call-1")
        with caplog.at_level(logging.INFO, logger="appliance.edge.print_agent"):
            assert rig.agent.run_once(T0) == 0
            assert rig.agent.run_once(T0 + timedelta(seconds=1)) == 0  # still out: held
        assert rig.emulator.tickets == [] and rig.emulator.cuts == 0
        assert rig.emulator.torn == [[f"ORDER #{order.number}", "17:45",
                                      "CALLER +31201234567", "-" * 42]]
        assert rig.driver.status().condition is PrinterCondition.PAPER_OUT
        assert rig.store.action_status(order.order_id) == "printing"
        alerts = [getattr(r, "fields", {}) for r in caplog.records
                  if r.getMessage() == "printer alert: not printing"]
        assert [a["condition"] for a in alerts] == ["paper_out"]  # once per change
        summary = rig.store.print_queue_summary()
        assert summary.printer and summary.printer.condition == "paper_out"
        assert summary.tickets_printing == 1 and summary.tickets_failing == 0

        rig.emulator.refill()
        assert rig.agent.run_once(T0 + timedelta(seconds=2)) == 1
        assert rig.agent.run_once(T0 + timedelta(seconds=3)) == 0
        (ticket,) = rig.emulator.tickets
        assert ticket.lines[0].text == f"ORDER #{order.number}"
        assert "** NO ONIONS **" in ticket.text and ticket.lines[-1].text == order.order_id
        assert rig.emulator.cuts == 1
        assert rig.store.action_status(order.order_id) == "succeeded"
        assert printed_events(rig.store) == [(order.order_id, "kitchen")]
        summary = rig.store.print_queue_summary()
        assert summary.printer and summary.printer.condition == "ready"
        assert summary.tickets_pending == summary.tickets_printing == 0


def test_printer_without_counter_reprints_marked_and_alerts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with make_rig("tcp", tmp_path, has_counter=False) as rig:
        order = submit(rig.store, "call-1")
        assert left_printing(rig, send=True) is None
        with caplog.at_level(logging.WARNING):
            assert rig.agent.run_once(T0 + timedelta(seconds=1)) == 1
        first, second = rig.emulator.tickets  # at-least-once: the kitchen may get two
        assert first.lines[0].text == f"ORDER #{order.number}"
        assert second.lines[0].text == "REPRINT - check for a duplicate"
        assert second.lines[1].text == f"ORDER #{order.number}"
        assert any(getattr(r, "fields", {}).get("alert") == "possible_duplicate"
                   for r in caplog.records)
        assert printed_events(rig.store) == [(order.order_id, "kitchen")]


def test_emulator_keeps_its_cut_count_across_a_restart(tmp_path: Path) -> None:
    out = tmp_path / "tickets"
    with BackgroundEmulator(PrinterEmulator(out, port=0)) as emulator:
        driver = EscposTicketPrinter(emulator.url, timeout_s=2.0, tz=UTC)
        store = LocalStore(tmp_path / "box.sqlite3")
        for key in ("call-1", "call-2"):
            submit(store, key)
        assert PrintAgent(store, driver, "kitchen").run_once(T0) == 2
        assert driver.cut_count() == 2
    with BackgroundEmulator(PrinterEmulator(out, port=0)) as emulator:
        assert emulator.cuts == 2
        assert EscposTicketPrinter(emulator.url, timeout_s=2.0).cut_count() == 2
        emulator.condition = PrinterCondition.COVER_OPEN  # an offline printer reads no counter
        assert EscposTicketPrinter(emulator.url, timeout_s=0.5).cut_count() is None
