"""The kitchen printer driver: the only module that imports python-escpos and pyserial.

python-escpos builds the bytes (its Dummy printer); we send them ourselves over a socket
or pyserial so that every connect, write and read has a timeout, and every failure comes
out as our `PrinterError`. After a ticket we ask for a real-time status: its answer
proves the printer read the whole ticket and was still printing when it did. The cut
counter (GS g 2, Epson maintenance counter 148) is what the print agent commits on; a
printer that never answers it is remembered as having none, so each ticket does not wait
out a timeout for it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import serial  # type: ignore[import-untyped]
from escpos.printer import Dummy  # type: ignore[import-untyped]

from appliance.config import PrinterConfig
from appliance.edge.ticket_layout import (
    DEFAULT_COLUMNS,
    TicketLine,
    header_lines_for_slip,
    layout_slip,
    layout_ticket,
)
from appliance.edge.ticket_printer import (
    DLE_EOT,
    STATUS_OFFLINE_CAUSE,
    STATUS_PAPER,
    STATUS_PRINTER,
    PrinterCondition,
    PrinterError,
    PrinterState,
    counter_request,
    decode_status,
    parse_counter_answer,
    reports_offline,
    well_formed,
)
from appliance.store.print_tickets import TicketMark
from sync.contracts.order import Order
from sync.structured_log import fields

log = logging.getLogger(__name__)

DEFAULT_TCP_PORT = 9100
DEFAULT_BAUDRATE = 19200


def encode_ticket(lines: list[TicketLine], profile: str | None = None) -> bytes:
    """ESC/POS bytes of a ticket: reset, each styled line, feed and full cut."""
    p = Dummy(profile=profile)
    p.hw("INIT")
    for line in lines:
        p.set(align=line.align, bold=line.bold, double_width=line.double,
              double_height=line.double or line.tall,
              normal_textsize=not (line.double or line.tall))
        p.textln(line.text)
    p.set(align="left", bold=False, normal_textsize=True)
    p.cut()
    return bytes(p.output)


class _Link(Protocol):
    """A byte pipe to the printer with a deadline on every operation."""

    def write(self, data: bytes) -> None: ...
    def read_byte(self) -> int | None: ...
    def discard_input(self) -> None: ...
    def close(self) -> None: ...


class _TcpLink:
    """One TCP connection to port 9100; raw ESC/POS printers expect connect, send, close."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._sock.settimeout(timeout_s)

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def read_byte(self) -> int | None:
        try:
            data = self._sock.recv(1)
        except TimeoutError:
            return None
        return data[0] if data else None

    def discard_input(self) -> None:
        """A fresh connection holds no stale answers."""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class _SerialLink:
    """An open serial port; kept open between tickets because reopening toggles DTR."""

    def __init__(self, path: str, baudrate: int, timeout_s: float) -> None:
        self._port = serial.Serial(
            path, baudrate=baudrate, timeout=timeout_s, write_timeout=timeout_s, exclusive=True,
        )
        self._timeout_s = timeout_s
        self._byte_s = 10 / baudrate  # 8N1: ten bits on the wire per byte
        self._backlog_s = 0.0

    def _set_timeouts(self, seconds: float) -> None:
        if self._port.timeout != seconds:  # each change is a tcsetattr
            self._port.timeout = self._port.write_timeout = seconds

    def write(self, data: bytes) -> None:
        # A long ticket at 9600 baud takes seconds on the wire: allow for it in both deadlines.
        self._backlog_s += len(data) * self._byte_s
        self._set_timeouts(self._timeout_s + self._backlog_s)
        self._port.write(data)

    def read_byte(self) -> int | None:
        self._set_timeouts(self._timeout_s + self._backlog_s)
        self._backlog_s = 0.0
        data = self._port.read(1)
        return data[0] if data else None

    def discard_input(self) -> None:
        """Drop a late answer to an earlier query so it is not read as this one's."""
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._port.close()


class EscposTicketPrinter:
    """A TicketPrinter for an ESC/POS printer at tcp://host:port or serial:///dev/tty?baudrate=."""

    def __init__(self, url: str, *, timeout_s: float = 3.0, columns: int = DEFAULT_COLUMNS,
                 tz: tzinfo | None = None, profile: str | None = None) -> None:
        parts = urlsplit(url)
        self.url = url
        self._timeout_s = timeout_s
        self._columns = columns
        # The kitchen reads local wall-clock time; the box's zone is fixed at start.
        self._tz: tzinfo = tz or datetime.now().astimezone().tzinfo or UTC
        self._profile = profile
        self._serial_link: _SerialLink | None = None
        self._tcp: tuple[str, int] = ("", 0)
        self._serial: tuple[str, int] | None = None
        self._has_counter: bool | None = None  # None until the printer answered GS g 2 once
        if parts.scheme == "tcp":
            if not parts.hostname:
                raise ValueError(f"printer url {url!r} has no host")
            self._tcp = (parts.hostname, parts.port or DEFAULT_TCP_PORT)
        elif parts.scheme == "serial":
            path = parts.netloc + parts.path
            if not path:
                raise ValueError(f"printer url {url!r} has no device path")
            query = parse_qs(parts.query)
            self._serial = (path, int(query.get("baudrate", [DEFAULT_BAUDRATE])[0]))
        else:
            raise ValueError(f"printer url {url!r} must start with tcp:// or serial://")

    @classmethod
    def from_config(cls, config: PrinterConfig, *, timeout_s: float = 3.0,
                    tz: tzinfo | None = None) -> EscposTicketPrinter:
        """The driver for the box's configured printer."""
        return cls(config.url, timeout_s=timeout_s, tz=tz)

    @contextlib.contextmanager
    def _link(self) -> Iterator[_Link]:
        """A link for one exchange; any transport failure leaves as PrinterError."""
        link: _Link | None = None
        try:
            if self._serial is None:
                link = _TcpLink(*self._tcp, self._timeout_s)
            else:
                if self._serial_link is None:
                    self._serial_link = _SerialLink(*self._serial, self._timeout_s)
                link = self._serial_link
        except (OSError, serial.SerialException, ValueError) as exc:
            raise PrinterError("printer.unreachable", f"cannot open {self.url}: {exc}") from exc
        try:
            yield link
        except (OSError, serial.SerialException) as exc:
            self._drop_serial()
            timed_out = isinstance(exc, TimeoutError | serial.SerialTimeoutException)
            code = "printer.timeout" if timed_out else "printer.io_failed"
            raise PrinterError(code, f"{self.url}: {exc}") from exc
        finally:
            if self._serial is None:
                link.close()

    def _drop_serial(self) -> None:
        if self._serial_link is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                self._serial_link.close()
            self._serial_link = None

    def _query(self, link: _Link, n: int) -> int | None:
        link.write(DLE_EOT + bytes([n]))
        return link.read_byte()

    def print_ticket(self, order: Order, mark: TicketMark | None = None,
                     may_have_printed: bool = False) -> None:
        """Send the order's ticket and confirm with a status query that it went through."""
        self._send(lambda: layout_ticket(order, self._tz, self._columns, mark, may_have_printed))

    def print_slip(self, title: str, lines: list[str], at: datetime,
                   may_have_printed: bool = False) -> None:
        """Send a slip that is not an order (a handover summary), confirmed like a ticket."""
        self._send(lambda: header_lines_for_slip(may_have_printed, self._columns)
                   + layout_slip(title, lines, at, self._tz, self._columns))

    def cut_count(self) -> int | None:
        """GS g 2 for the cumulative autocutter count; None if the printer has no counter
        (it never answered one) or could not be read this time."""
        if self._has_counter is False:
            return None
        try:
            with self._link() as link:
                link.discard_input()
                link.write(counter_request())
                answer = self._read_counter(link)
        except PrinterError as exc:
            log.warning("cut counter not read", extra=fields(printer_url=self.url,
                                                             error=exc.message))
            return None
        if answer is None:
            self._drop_serial()  # a late answer must not be read as the next status byte
            if self._has_counter is None:
                self._has_counter = False
                log.warning("printer alert: no cut counter, printing is at-least-once",
                            extra=fields(alert="printer_no_cut_counter", printer_url=self.url))
            return None
        self._has_counter = True
        return answer

    @staticmethod
    def _read_counter(link: _Link) -> int | None:
        """'_', up to ten digits, NUL; None on silence or anything else."""
        data = bytearray()
        while len(data) < 12:
            byte = link.read_byte()
            if byte is None:
                return None
            data.append(byte)
            if byte == 0:
                return parse_counter_answer(bytes(data))
        return None

    def _send(self, layout: Callable[[], list[TicketLine]]) -> None:
        try:
            data = encode_ticket(layout(), self._profile)
        except Exception as exc:  # a ticket we cannot encode will never print: say so, once
            raise PrinterError("printer.encode_failed", repr(exc), retryable=False) from exc
        started = time.monotonic()
        with self._link() as link:
            link.discard_input()
            link.write(data)
            answer = self._query(link, STATUS_PRINTER)
        if answer is None or not well_formed(answer):
            self._drop_serial()
            raise PrinterError("printer.no_answer",
                               f"{self.url} did not confirm the ticket within {self._timeout_s}s")
        if reports_offline(answer):
            raise PrinterError("printer.offline", f"{self.url} went offline during the ticket")
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        log.info("ticket sent", extra=fields(printer_url=self.url, bytes=len(data),
                                             elapsed_ms=elapsed_ms))

    def status(self) -> PrinterState:
        """Ask DLE EOT 1, 2 and 4; a printer that does not answer in time is UNKNOWN."""
        answers: list[int] = []
        try:
            with self._link() as link:
                link.discard_input()
                for n in (STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_PAPER):
                    answer = self._query(link, n)
                    if answer is None:
                        self._drop_serial()
                        detail = f"no answer to DLE EOT {n} within {self._timeout_s}s"
                        return PrinterState(condition=PrinterCondition.UNKNOWN, detail=detail)
                    answers.append(answer)
        except PrinterError as exc:
            return PrinterState(condition=PrinterCondition.UNKNOWN, detail=exc.message)
        return decode_status(*answers)

    def close(self) -> None:
        """Release the serial port, if one is open."""
        self._drop_serial()
