"""The paper runs out in the middle of a ticket while orders keep coming, then is refilled.

The emulator (a short roll) prints the head of the ticket, loses the rest and the cut,
and reports paper end. The ticket that was torn must come out again, whole, after the
refill; no other ticket may come out twice or not at all. The print agent learns what
happened from the printer's cut counter, which did not move for the torn ticket.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.faults.stack import FaultStack, wait_until
from tests.faults.verdict import assert_exactly_once, box_backlog, printed_tickets

pytestmark = pytest.mark.slow
ROLL_LINES = 100  # a few tickets' worth: the roll ends inside a ticket


def test_paper_out_mid_ticket_then_refill_prints_each_ticket_once(tmp_path: Path) -> None:
    with FaultStack(tmp_path / "stack", paper_lines=ROLL_LINES) as stack:
        stack.start()
        for _ in range(20):
            stack.loader.submit()

        def ran_out() -> bool:
            return any(r.get("msg") == "paper ran out mid-ticket"
                       for r in stack.printer.log_records())
        wait_until(ran_out, 60, "the roll to end inside a ticket", lambda: stack.tail(stack.printer))
        wait_until(lambda: any(r.get("msg") == "printer alert: not printing"
                               for r in stack.edge.log_records()), 30,
                   "the print agent to see the paper end", lambda: stack.tail(stack.edge))
        before_refill = sum(printed_tickets(stack.tickets_dir).values())
        assert 0 < before_refill < 20 and box_backlog(stack)[0] == 20 - before_refill
        for _ in range(5):  # orders keep coming while the printer is out of paper
            stack.loader.submit()

        stack.printer.send(signal.SIGUSR1)  # new (endless) roll in, cover closed
        verdict = assert_exactly_once(stack, stack.loader.submitted)
        print(f"{before_refill} tickets before the paper ran out; {verdict}")
