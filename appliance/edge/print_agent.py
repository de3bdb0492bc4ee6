"""voxeron-edge: drains the kitchen-ticket and slip queues of the local store onto the printer.

Exactly once, with the printer's cut counter as the commit point:

1. Before a ticket is sent, the agent reads the printer's cumulative cut count and, in one
   store transaction, marks the ticket `printing` with that count.
2. It sends the ticket, which ends with a cut, and confirms with a status query.
3. It marks the ticket `succeeded` (and queues ticket.printed).

A ticket found `printing` (the agent was killed, or the send failed) is resolved by
reading the counter again: moved past the recorded count -> the ticket came out, mark it
succeeded without printing; not moved -> nothing came out, print it again. Only one job is
ever `printing`, so a moved counter is that job's cut. Caveats: a printer's own cuts (a
self-test page, a power-on cut) in that window read as our ticket. A printer that reports no
counter (or cannot be read at resolution time) gets at-least-once: the retry prints
headed "REPRINT - check for a duplicate" and an alert is logged.

Each pass asks the printer how it is before claiming anything, so a printer without paper
leaves tickets pending (and visible to the setup UI) instead of burning retries; a ticket
that fails while the printer is ready waits a persisted, jittered, growing delay and is
dead lettered (alert + ticket.failed) after `RetryPolicy.dead_letter_after` failures.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol

from appliance.config import BoxIdentity, PrinterConfig
from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.print_backoff import Backoff, RetryPolicy
from appliance.edge.ticket_printer import (
    PrinterCondition,
    PrinterError,
    PrinterState,
    TicketPrinter,
)
from appliance.store.local_store import LocalStore, PrintJob
from appliance.store.print_queue import JobKind
from appliance.store.print_slips import PrintSlip
from sync.structured_log import bind, fields, log_context, setup_logging

__all__ = ["Backoff", "PrintAgent", "RetryPolicy", "run_edge"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Job(Protocol):
    """A claimed (or in-doubt) ticket or slip, as one pass of the agent handles it."""

    kind: JobKind
    key: str
    noun: str
    attempts: int
    failures: int
    cuts_before: int | None
    may_have_printed: bool

    def context(self) -> AbstractContextManager[None]: ...
    def send(self, printer: TicketPrinter) -> None: ...
    def complete(self, store: LocalStore, printer: str, now: datetime) -> bool: ...
    def dead_letter(self, store: LocalStore, printer: str, error: str, now: datetime) -> bool: ...
    def facts(self) -> dict[str, object]: ...


class _Ticket:
    """An order's kitchen ticket (an action of kind print_ticket)."""

    kind: JobKind = "ticket"
    noun = "ticket"

    def __init__(self, job: PrintJob) -> None:
        self.job, self.key, self.attempts = job, job.action_id, job.attempts
        self.failures, self.cuts_before = job.failures, job.cuts_before
        self.may_have_printed = job.may_have_printed

    def context(self) -> AbstractContextManager[None]:
        order = self.job.order
        return log_context(tenant_id=order.tenant_id, device_id=order.device_id,
                           order_id=order.order_id, action_id=self.job.action_id)

    def send(self, printer: TicketPrinter) -> None:
        printer.print_ticket(self.job.order, self.job.mark, self.may_have_printed)

    def complete(self, store: LocalStore, printer: str, now: datetime) -> bool:
        return store.complete_print(self.job, printer, now)

    def dead_letter(self, store: LocalStore, printer: str, error: str, now: datetime) -> bool:
        return store.dead_letter_print(self.job, printer, error, now)

    def facts(self) -> dict[str, object]:
        return {"number": self.job.order.number,
                "mark": str(self.job.mark) if self.job.mark else None}


class _Slip:
    """A slip that belongs to no order (a handover summary)."""

    kind: JobKind = "slip"
    noun = "slip"

    def __init__(self, slip: PrintSlip) -> None:
        self.slip, self.key, self.attempts = slip, slip.slip_id, slip.attempts
        self.failures, self.cuts_before = slip.failures, slip.cuts_before
        self.may_have_printed = slip.may_have_printed

    def context(self) -> AbstractContextManager[None]:
        return log_context(call_id=self.slip.call_id, action_id=self.slip.slip_id)

    def send(self, printer: TicketPrinter) -> None:
        printer.print_slip(self.slip.title, self.slip.lines, self.slip.created_at,
                           self.may_have_printed)

    def complete(self, store: LocalStore, printer: str, now: datetime) -> bool:
        return store.complete_slip(self.slip, now)

    def dead_letter(self, store: LocalStore, printer: str, error: str, now: datetime) -> bool:
        return store.dead_letter_slip(self.slip, error, now)

    def facts(self) -> dict[str, object]:
        return {"kind": self.slip.kind}


class PrintAgent:
    """Prints claimed tickets, then slips, exactly once each where the printer reports its
    cut counter (see the module docstring), at least once otherwise.

    All retry state is in the store; the agent keeps only the last printer condition it
    saw (to alert on changes) and the random source of the jitter."""

    def __init__(self, store: LocalStore, printer: TicketPrinter, printer_name: str,
                 backoff: Backoff | None = None, dead_letter_after: int = 6,
                 rng: random.Random | None = None) -> None:
        self.store, self.printer, self.printer_name = store, printer, printer_name
        self.policy = RetryPolicy(backoff or Backoff(), dead_letter_after)
        self._rng = rng or random.Random()
        self._last_condition: PrinterCondition | None = None

    def _check_printer(self, now: datetime) -> PrinterState:
        """Ask the printer; log and store its condition when it changed."""
        state = self.printer.status()
        changed = state.condition is not self._last_condition
        self._last_condition = state.condition
        if changed:
            self.store.record_printer_condition(self.printer_name, str(state.condition),
                                                state.detail, now)
        if state.ready:
            if changed:
                log.info("printer ready", extra=fields(printer=self.printer_name,
                                                       paper_near_end=state.paper_near_end))
            return state
        # Alert on the change only: the loop polls several times a second.
        level = logging.WARNING if changed else logging.DEBUG
        log.log(level, "printer alert: not printing", extra=fields(
            alert="printer_not_ready", printer=self.printer_name,
            condition=str(state.condition), detail=state.detail))
        return state

    def run_once(self, now: datetime) -> int:
        """One pass: check the printer, settle a ticket left printing, then print every ticket
        and then every slip that is due; returns how many came out."""
        if not self._check_printer(now).ready:
            return 0
        printed = self._resolve_in_doubt(now)
        tickets = [_Ticket(job) for job in self.store.claim_print_jobs(now)]
        more, healthy = self._drain(tickets, now)
        printed += more
        if healthy:  # slips are claimed only while the printer is taking paper
            more, _ = self._drain([_Slip(slip) for slip in self.store.claim_slips(now)], now)
            printed += more
        return printed

    def _resolve_in_doubt(self, now: datetime) -> int:
        """Settle the job an earlier pass or process left printing: 1 if it had come out."""
        ticket = self.store.printing_ticket()
        slip = None if ticket else self.store.printing_slip()
        job: _Job | None = _Ticket(ticket) if ticket else _Slip(slip) if slip else None
        if job is None:
            return 0
        with job.context():
            log.info(f"{job.noun} left printing: reading the cut counter",
                     extra=fields(printer=self.printer_name, cuts_before=job.cuts_before))
            return int(self._settle(job, job.cuts_before, None, now))

    def _drain(self, jobs: list[_Job], now: datetime) -> tuple[int, bool]:
        """Print claimed jobs in order: (how many printed, False if the printer failed)."""
        printed = 0
        for index, job in enumerate(jobs):
            with job.context():
                outcome = self._print(job, now)
            if outcome is None:
                for rest in jobs[index + 1:]:
                    # The printer just failed: do not queue ten timeouts behind it.
                    self.store.release_print(
                        rest.kind, rest.key, failed=False, now=now,
                        error="deferred: the printer failed on an earlier ticket")
                return printed, False
            printed += outcome
        return printed, True

    def _print(self, job: _Job, now: datetime) -> int | None:
        """Commit point, send, complete: 1 printed, 0 skipped, None if the printer failed."""
        cuts = self.printer.cut_count()
        if not self.store.begin_print(job.kind, job.key, cuts, now):
            log.info(f"{job.noun} skipped: cancelled since it was claimed",
                     extra=fields(printer=self.printer_name))
            return 0
        try:
            job.send(self.printer)
        except PrinterError as exc:
            self._after_failure(job, exc, cuts, now)
            return None
        self._complete(job, now)
        return 1

    def _complete(self, job: _Job, now: datetime) -> None:
        if job.complete(self.store, self.printer_name, now):
            log.info(f"{job.noun} printed", extra=fields(printer=self.printer_name, **job.facts()))
        else:
            log.info(f"{job.noun} was already marked printed",
                     extra=fields(printer=self.printer_name))

    def _after_failure(self, job: _Job, exc: PrinterError, cuts: int | None,
                       now: datetime) -> None:
        """A send failed: give up, hold (printer not ready) or count a failure."""
        error = f"{exc.code}: {exc.message}"
        log.warning(f"{job.noun} send failed", extra=fields(
            printer=self.printer_name, code=exc.code, error=exc.message, attempts=job.attempts))
        if not exc.retryable:
            self._give_up(job, error, now)
            return
        ready = self._check_printer(now).ready
        if exc.may_have_printed and not ready:
            # Part of it may be on paper: the counter decides once the printer is back.
            log.warning(f"{job.noun} held mid-print until the printer is ready",
                        extra=fields(printer=self.printer_name))
            return
        if exc.may_have_printed:
            self._settle(job, cuts, error, now)
        elif ready:
            self._count_failure(job, error, False, now)
        else:
            self.store.release_print(job.kind, job.key, error=error, failed=False, now=now)

    def _settle(self, job: _Job, cuts_before: int | None, error: str | None,
                now: datetime) -> bool:
        """Resolve a job that may have printed by the counter; True if it came out. `error` is
        the failure just seen (counted), None for a job found printing (not counted)."""
        cuts_after = self.printer.cut_count()
        if cuts_before is not None and cuts_after is not None:
            if cuts_after > cuts_before:
                log.info(f"{job.noun} came out before it was marked: not printed again",
                         extra=fields(printer=self.printer_name, cuts_before=cuts_before,
                                      cuts_after=cuts_after))
                self._complete(job, now)
                return True
            log.info(f"{job.noun} did not come out: printing it again",
                     extra=fields(printer=self.printer_name, cuts_before=cuts_before,
                                  cuts_after=cuts_after))
            if error:
                self._count_failure(job, error, False, now)
            else:
                self.store.release_print(job.kind, job.key, error=None, failed=False, now=now)
            return False
        log.warning("printer alert: cannot tell whether it came out; reprinting marked REPRINT",
                    extra=fields(alert="possible_duplicate", printer=self.printer_name,
                                 noun=job.noun, cuts_before=cuts_before, cuts_after=cuts_after))
        if error:
            self._count_failure(job, error, True, now)
        else:
            self.store.release_print(job.kind, job.key, error=None, failed=False,
                                     may_have_printed=True, now=now)
        return False

    def _count_failure(self, job: _Job, error: str, may_have_printed: bool,
                       now: datetime) -> None:
        failures = job.failures + 1
        retry_at = self.policy.next_attempt(failures, True, now, self._rng.random())
        if retry_at is None:
            self._give_up(job, error, now)
            return
        self.store.release_print(job.kind, job.key, error=error, failed=True,
                                 next_attempt_at=retry_at, may_have_printed=may_have_printed,
                                 now=now)
        log.warning(f"{job.noun} failed", extra=fields(
            printer=self.printer_name, error=error, failures=failures,
            retry_in_s=round((retry_at - now).total_seconds(), 3), attempts=job.attempts))

    def _give_up(self, job: _Job, error: str, now: datetime) -> None:
        if job.dead_letter(self.store, self.printer_name, error, now):
            log.error(f"printer alert: {job.noun} dead lettered, staff must act", extra=fields(
                alert="print_dead_lettered", printer=self.printer_name, error=error,
                failures=job.failures + 1, **job.facts()))

    def run_forever(self, stop: threading.Event, poll_s: float,
                    clock: Callable[[], datetime] = _utcnow) -> None:
        """Pass after pass until `stop` is set; a failing pass is logged, never fatal."""
        while not stop.is_set():
            try:
                self.run_once(clock())
            except Exception:
                log.exception("print pass failed", extra=fields(printer=self.printer_name))
            stop.wait(poll_s)


def run_edge(identity: BoxIdentity, printer: PrinterConfig) -> None:
    """Process entry of voxeron-edge: print tickets until SIGTERM or SIGINT."""
    setup_logging("edge")
    bind(tenant_id=identity.tenant_id, device_id=identity.device_id)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", extra=fields(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    store = LocalStore(identity.db_path)
    driver = EscposTicketPrinter.from_config(printer)
    log.info("edge started", extra=fields(printer=printer.name, printer_url=printer.url,
                                          db=str(identity.db_path)))
    try:
        backoff = Backoff(printer.retry_base_s, printer.retry_cap_s, jitter=0.2)
        agent = PrintAgent(store, driver, printer.name, backoff, printer.dead_letter_after)
        agent.run_forever(stop, printer.poll_s)
    finally:
        driver.close()
        store.close()
