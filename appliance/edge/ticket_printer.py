"""What the print agent needs from a kitchen printer, and the ESC/POS status bytes behind it.

The agent sees only this protocol, `PrinterState` and `PrinterError`; the python-escpos
adapter and the emulator both meet here. The status codec is pure and lives here (not
in the adapter) so the emulator answers exactly what the driver decodes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from appliance.store.print_tickets import TicketMark
from sync.contracts.order import Order

DLE_EOT = b"\x10\x04"
"""Real-time status request (Epson ESC/POS): DLE EOT n, answered with one byte at once."""

STATUS_PRINTER, STATUS_OFFLINE_CAUSE, STATUS_ERROR_CAUSE, STATUS_PAPER = 1, 2, 3, 4

CUTS_COUNTER = 148
"""Epson maintenance counter 148: autocutter operations, cumulative (20 + 128; the
resettable 20 could be zeroed by a service tool between our two reads)."""
COUNTER_HEADER = 0x5F
"""GS g 2 is answered with '_' (0x5F), the count in ASCII decimal digits, then NUL."""
MAX_COUNTER_DIGITS = 10


def counter_request(counter: int = CUTS_COUNTER) -> bytes:
    """GS g 2 n nL nH (n = 0): ask for maintenance counter `counter`."""
    return bytes([0x1D, 0x67, 0x32, 0x00, counter & 0xFF, counter >> 8 & 0xFF])


def counter_answer(value: int) -> bytes:
    """What a printer sends back to GS g 2 for a counter reading `value`."""
    return bytes([COUNTER_HEADER]) + str(value).encode("ascii") + b"\x00"


def parse_counter_answer(data: bytes) -> int | None:
    """The count in a complete GS g 2 answer; None if `data` is not one."""
    if len(data) < 3 or data[0] != COUNTER_HEADER or data[-1] != 0:
        return None
    digits = data[1:-1]
    if not digits.isdigit() or len(digits) > MAX_COUNTER_DIGITS:
        return None
    return int(digits)

_FIXED = 0x12
"""Bits 1 and 4 are always 1 and bits 0 and 7 always 0 in every DLE EOT answer."""
_FIXED_MASK = 0x93
_OFFLINE = 0x08  # n=1 bit 3
_COVER_OPEN = 0x04  # n=2 bit 2
_STOPPED_BY_PAPER_END = 0x20  # n=2 bit 5
_ERROR = 0x40  # n=2 bit 6
_PAPER_NEAR_END = 0x0C  # n=4 bits 2-3
_PAPER_END = 0x60  # n=4 bits 5-6


class PrinterCondition(StrEnum):
    """Whether a ticket sent now would come out, and if not, what the staff must fix."""

    READY = "ready"
    OFFLINE = "offline"
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    UNKNOWN = "unknown"


class PrinterState(BaseModel, frozen=True):
    """A printer's answer to a status query; UNKNOWN when it could not be reached or read."""

    condition: PrinterCondition
    paper_near_end: bool = False
    detail: str | None = None

    @property
    def ready(self) -> bool:
        return self.condition is PrinterCondition.READY


class PrinterError(Exception):
    """A ticket did not reach the paper; `code` is stable, `retryable` says whether to retry."""

    def __init__(self, code: str, message: str, retryable: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable

    @property
    def may_have_printed(self) -> bool:
        """False only when no byte can have reached the printer (no link, nothing encoded)."""
        return self.code not in ("printer.unreachable", "printer.encode_failed")


class TicketPrinter(Protocol):
    """A kitchen printer as the print agent uses it."""

    def print_ticket(self, order: Order, mark: TicketMark | None = None,
                     may_have_printed: bool = False) -> None:
        """Print the order's ticket (headed as `mark` and `may_have_printed` say) and return
        once the printer took it; else PrinterError. The ticket ends with a cut."""
        ...

    def print_slip(self, title: str, lines: list[str], at: datetime,
                   may_have_printed: bool = False) -> None:
        """Print a slip that is no order (`title` big, then `lines`, queued at `at`); else
        PrinterError, as for a ticket."""
        ...

    def cut_count(self) -> int | None:
        """The printer's cumulative autocutter count, or None if it cannot report one (then
        printing is at-least-once); never raises."""
        ...

    def status(self) -> PrinterState:
        """Ask the printer how it is; never raises (an unreachable printer is UNKNOWN)."""
        ...


def status_byte(condition: PrinterCondition, n: int) -> int:
    """The byte a printer in `condition` answers to DLE EOT n (n = 1..4, Epson layout)."""
    value = _FIXED
    if n == STATUS_PRINTER and condition is not PrinterCondition.READY:
        value |= _OFFLINE
    elif n == STATUS_OFFLINE_CAUSE:
        if condition is PrinterCondition.COVER_OPEN:
            value |= _COVER_OPEN
        elif condition is PrinterCondition.PAPER_OUT:
            value |= _STOPPED_BY_PAPER_END
        elif condition is PrinterCondition.OFFLINE:
            value |= _ERROR
    elif n == STATUS_PAPER and condition is PrinterCondition.PAPER_OUT:
        value |= _PAPER_END | _PAPER_NEAR_END
    return value


def transmit_status_byte(condition: PrinterCondition, n: int) -> int:
    """The byte answered to GS r n: for n = 1 (paper sensor) bits 0-1 are near end and
    bits 2-3 paper end; n = 2 (drawer) reads 0, as with no drawer connected."""
    return 0x0F if n == 1 and condition is PrinterCondition.PAPER_OUT else 0x00


def well_formed(byte: int) -> bool:
    """True if `byte` has the fixed bits of a DLE EOT answer, i.e. is not line noise."""
    return byte & _FIXED_MASK == _FIXED


def reports_offline(printer: int) -> bool:
    """True if the answer to DLE EOT 1 says the printer is offline (bit 3)."""
    return bool(printer & _OFFLINE)


def decode_status(printer: int, offline_cause: int, paper: int) -> PrinterState:
    """Read the answers to DLE EOT 1, 2 and 4 into one state, most actionable cause first."""
    for name, byte in (("printer", printer), ("offline cause", offline_cause), ("paper", paper)):
        if not well_formed(byte):
            return PrinterState(condition=PrinterCondition.UNKNOWN,
                                detail=f"malformed {name} status byte 0x{byte:02x}")
    near_end = bool(paper & _PAPER_NEAR_END)
    if offline_cause & _COVER_OPEN:
        condition = PrinterCondition.COVER_OPEN
    elif paper & _PAPER_END or offline_cause & _STOPPED_BY_PAPER_END:
        condition = PrinterCondition.PAPER_OUT
    elif reports_offline(printer) or offline_cause & _ERROR:
        condition = PrinterCondition.OFFLINE
    else:
        condition = PrinterCondition.READY
    return PrinterState(condition=condition, paper_near_end=near_end)
