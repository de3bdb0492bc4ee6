"""voxeron-edge: drains the kitchen-ticket and slip queues of the local store onto the printer.

Each pass asks the printer how it is before claiming anything, so a printer without paper
leaves tickets pending (and visible to the setup UI) instead of burning retries. A failed
ticket waits an exponentially growing delay before its next try.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Protocol

from appliance.config import BoxIdentity, PrinterConfig
from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.ticket_printer import PrinterCondition, PrinterError, TicketPrinter
from appliance.store.local_store import LocalStore, PrintJob
from appliance.store.print_slips import PrintSlip
from sync.structured_log import bind, fields, log_context, setup_logging

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Retry delays of a failed ticket: base * 2^(failures-1), capped."""

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failures: int) -> timedelta:
        if failures <= 0:
            return timedelta(0)
        return timedelta(seconds=min(self.cap_s, self.base_s * 2 ** min(failures - 1, 32)))

    def due(self, failures: int, last_attempt_at: datetime | None, now: datetime) -> bool:
        """Whether a ticket that failed `failures` times, last at `last_attempt_at`, may go now."""
        return last_attempt_at is None or now >= last_attempt_at + self.delay(failures)


@dataclass(frozen=True)
class _Failure:
    count: int
    at: datetime
    error: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Job(Protocol):
    """A claimed ticket or slip, as one pass of the agent handles it."""

    key: str
    noun: str
    attempts: int

    def context(self) -> AbstractContextManager[None]: ...
    def send(self, printer: TicketPrinter) -> None: ...
    def complete(self, store: LocalStore, printer: str, now: datetime) -> bool: ...
    def fail(self, store: LocalStore, error: str, now: datetime) -> None: ...
    def facts(self) -> dict[str, object]: ...


class _Ticket:
    """An order's kitchen ticket (an action of kind print_ticket)."""

    noun = "ticket"

    def __init__(self, job: PrintJob) -> None:
        self.job, self.key, self.attempts = job, job.action_id, job.attempts

    def context(self) -> AbstractContextManager[None]:
        order = self.job.order
        return log_context(tenant_id=order.tenant_id, device_id=order.device_id,
                           order_id=order.order_id, action_id=self.job.action_id)

    def send(self, printer: TicketPrinter) -> None:
        printer.print_ticket(self.job.order)

    def complete(self, store: LocalStore, printer: str, now: datetime) -> bool:
        return store.complete_print(self.job, printer, now)

    def fail(self, store: LocalStore, error: str, now: datetime) -> None:
        store.fail_print(self.job, error, now)

    def facts(self) -> dict[str, object]:
        return {"number": self.job.order.number}


class _Slip:
    """A slip that belongs to no order (a handover summary)."""

    noun = "slip"

    def __init__(self, slip: PrintSlip) -> None:
        self.slip, self.key, self.attempts = slip, slip.slip_id, slip.attempts

    def context(self) -> AbstractContextManager[None]:
        return log_context(call_id=self.slip.call_id, action_id=self.slip.slip_id)

    def send(self, printer: TicketPrinter) -> None:
        printer.print_slip(self.slip.title, self.slip.lines, self.slip.created_at)

    def complete(self, store: LocalStore, printer: str, now: datetime) -> bool:
        return store.complete_slip(self.slip, now)

    def fail(self, store: LocalStore, error: str, now: datetime) -> None:
        store.fail_slip(self.slip, error, now)

    def facts(self) -> dict[str, object]:
        return {"kind": self.slip.kind}


class PrintAgent:
    """Prints claimed tickets, then slips, exactly once each, as far as the printer can tell us.

    Failure counts and times are kept in memory: after a restart a failed ticket is tried
    at once, then backs off again. (The store's `attempts` counts claims, and a claim that
    finds a ticket still backing off is not an attempt, so it cannot drive the delay.)
    """

    def __init__(self, store: LocalStore, printer: TicketPrinter, printer_name: str,
                 backoff: Backoff | None = None) -> None:
        self.store, self.printer, self.printer_name = store, printer, printer_name
        self.backoff = backoff or Backoff()
        self._failures: dict[str, _Failure] = {}
        self._last_condition: PrinterCondition | None = None

    def _printer_ready(self) -> bool:
        state = self.printer.status()
        changed = state.condition is not self._last_condition
        self._last_condition = state.condition
        if state.ready:
            if changed:
                log.info("printer ready", extra=fields(printer=self.printer_name,
                                                       paper_near_end=state.paper_near_end))
            return True
        # Alert on the change only: the loop polls several times a second.
        level = logging.WARNING if changed else logging.DEBUG
        log.log(level, "printer alert: not printing", extra=fields(
            alert="printer_not_ready", printer=self.printer_name,
            condition=str(state.condition), detail=state.detail))
        return False

    def run_once(self, now: datetime) -> int:
        """One pass: check the printer, then print every ticket and then every slip that is
        due; returns how many came out."""
        if not self._printer_ready():
            return 0
        tickets = [_Ticket(job) for job in self.store.claim_print_jobs(now)]
        printed, healthy = self._drain(tickets, now)
        if healthy:  # slips are claimed only while the printer is taking paper
            more, _ = self._drain([_Slip(slip) for slip in self.store.claim_slips(now)], now)
            printed += more
        return printed

    def _drain(self, jobs: list[_Job], now: datetime) -> tuple[int, bool]:
        """Print claimed jobs in order: (how many printed, False if the printer failed)."""
        printed = 0
        for index, job in enumerate(jobs):
            with job.context():
                failure = self._failures.get(job.key)
                if failure and not self.backoff.due(failure.count, failure.at, now):
                    job.fail(self.store, failure.error, now)  # back to pending, untouched
                    continue
                if not self._print(job, failure, now):
                    for rest in jobs[index + 1:]:
                        # The printer just failed: do not queue ten timeouts behind it.
                        rest.fail(self.store, self._error_of(rest), now)
                    return printed, False
                printed += 1
        return printed, True

    def _error_of(self, job: _Job) -> str:
        failure = self._failures.get(job.key)
        return failure.error if failure else "deferred: the printer failed on an earlier ticket"

    def _print(self, job: _Job, failure: _Failure | None, now: datetime) -> bool:
        try:
            job.send(self.printer)
        except PrinterError as exc:
            count = (failure.count if failure else 0) + 1
            error = f"{exc.code}: {exc.message}"
            self._failures[job.key] = _Failure(count, now, error)
            job.fail(self.store, error, now)
            log.warning(f"{job.noun} failed", extra=fields(
                printer=self.printer_name, code=exc.code, error=exc.message, failures=count,
                retry_in_s=self.backoff.delay(count).total_seconds(), attempts=job.attempts))
            return False
        self._failures.pop(job.key, None)
        if job.complete(self.store, self.printer_name, now):
            log.info(f"{job.noun} printed", extra=fields(printer=self.printer_name, **job.facts()))
        else:
            log.info(f"{job.noun} was already marked printed",
                     extra=fields(printer=self.printer_name))
        return True

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
        PrintAgent(store, driver, printer.name).run_forever(stop, printer.poll_s)
    finally:
        driver.close()
        store.close()
