"""Platform commands reach the kitchen paper through the real agent, driver and emulator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.print_agent import PrintAgent
from appliance.edge.printer_emulator import BackgroundEmulator, PrinterEmulator
from appliance.store.local_store import LocalStore
from tests.integration.test_print_agent import T0, submit


def test_cancel_reprint_and_supersede_on_paper(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    with BackgroundEmulator(PrinterEmulator(tmp_path / "tickets", port=0)) as emulator:
        agent = PrintAgent(store, EscposTicketPrinter(emulator.url, timeout_s=2.0), "kitchen")
        never, printed, amended = (submit(store, k) for k in ("call-1", "call-2", "call-3"))
        for _ in range(2):  # a redelivered command changes nothing
            store.cancel_order(never.order_id, "cmd-cancel-1", "caller cancelled", T0)
        assert agent.run_once(T0) == 2  # #2 and #3; #1 never reaches the printer

        for _ in range(2):
            store.cancel_order(printed.order_id, "cmd-cancel-2", "no show", T0)
            store.reprint_ticket(amended.order_id, "cmd-reprint-3", T0)
        assert agent.run_once(T0 + timedelta(seconds=1)) == 2
        for _ in range(2):
            store.supersede_order(amended.order_id, amended.model_copy(
                update={"order_id": "ord_amended3", "lines": amended.lines[1:]}),
                "cmd-supersede-3", T0)
        assert agent.run_once(T0 + timedelta(seconds=2)) == 1
        assert agent.run_once(T0 + timedelta(seconds=3)) == 0

        heads = [[line.text for line in t.lines[:2]] for t in emulator.tickets]
        assert heads == [
            [f"ORDER #{printed.number}", "17:45"],
            [f"ORDER #{amended.number}", "17:45"],
            ["CANCELLED", f"ORDER #{printed.number}"],
            ["REPRINT", f"ORDER #{amended.number}"],
            [f"AMENDED - replaces #{amended.number}", f"ORDER #{amended.number}"],
        ]
        assert "PEPPERONI" not in emulator.tickets[-1].text  # the amended order dropped it
        assert "1x COLA" in emulator.tickets[-1].text
    types = [e.data.type for e in store.pending_events(100)]
    assert types.count("order.cancelled") == 2 and types.count("order.superseded") == 1
    assert types.count("ticket.reprint_requested") == 1 and types.count("ticket.printed") == 5
