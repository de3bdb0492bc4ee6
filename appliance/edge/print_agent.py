"""voxeron-edge: drains the kitchen-ticket queue of the local store onto the printer.

Each pass asks the printer how it is before claiming anything, so a printer without paper
leaves tickets pending (and visible to the setup UI) instead of burning retries. A failed
ticket waits an exponentially growing delay before its next try.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType

from appliance.config import BoxIdentity, PrinterConfig
from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.ticket_printer import PrinterCondition, PrinterError, TicketPrinter
from appliance.store.local_store import LocalStore, PrintJob
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


class PrintAgent:
    """Prints claimed ticket actions exactly once each, as far as the printer can tell us.

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
        """One pass: check the printer, then print every ticket that is due; returns how many."""
        if not self._printer_ready():
            return 0
        printed = 0
        jobs = self.store.claim_print_jobs(now)
        for index, job in enumerate(jobs):
            order = job.order
            with log_context(tenant_id=order.tenant_id, device_id=order.device_id,
                             order_id=order.order_id, action_id=job.action_id):
                failure = self._failures.get(job.action_id)
                if failure and not self.backoff.due(failure.count, failure.at, now):
                    self.store.fail_print(job, failure.error, now)  # back to pending, untouched
                    continue
                if not self._print(job, failure, now):
                    for rest in jobs[index + 1:]:
                        # The printer just failed: do not queue ten timeouts behind it.
                        self.store.fail_print(rest, self._error_of(rest), now)
                    break
                printed += 1
        return printed

    def _error_of(self, job: PrintJob) -> str:
        failure = self._failures.get(job.action_id)
        return failure.error if failure else "deferred: the printer failed on an earlier ticket"

    def _print(self, job: PrintJob, failure: _Failure | None, now: datetime) -> bool:
        try:
            self.printer.print_ticket(job.order)
        except PrinterError as exc:
            count = (failure.count if failure else 0) + 1
            error = f"{exc.code}: {exc.message}"
            self._failures[job.action_id] = _Failure(count, now, error)
            self.store.fail_print(job, error, now)
            log.warning("ticket failed", extra=fields(
                printer=self.printer_name, code=exc.code, error=exc.message, failures=count,
                retry_in_s=self.backoff.delay(count).total_seconds(), attempts=job.attempts))
            return False
        self._failures.pop(job.action_id, None)
        if self.store.complete_print(job, self.printer_name, now):
            log.info("ticket printed", extra=fields(printer=self.printer_name,
                                                    number=job.order.number))
        else:
            log.info("ticket was already marked printed", extra=fields(printer=self.printer_name))
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
