"""An incremental ESC/POS decoder: bytes in, printed lines, cuts and status requests out.

It is pure (no I/O, no clock) so the emulator's TCP and serial modes share it and tests
can feed it any byte split. Unknown commands are skipped by their known length where the
spec gives one, else by two bytes, and reported as a note: a bad stream may print
garbage but never crashes the decoder, grows its memory or stalls it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Align = Literal["left", "center", "right"]

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
HT, LF, FF, CR = 0x09, 0x0A, 0x0C, 0x0D

CODEPAGES: dict[int, str] = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857", 14: "cp737",
    15: "iso8859_7", 16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 21: "cp874",
    32: "cp720", 33: "cp775", 34: "cp855", 35: "cp861", 36: "cp862", 37: "cp864",
    38: "cp869", 39: "iso8859_2", 40: "iso8859_15", 44: "cp1125", 45: "cp1250",
    46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255", 50: "cp1256", 51: "cp1257",
    52: "cp1258", 53: "kz1048",
}
"""ESC t n numbers of python-escpos' default profile that Python can decode byte by byte."""

# Commands we read past without acting on them: total length including ESC/GS/FS.
_ESC_FIXED = {
    0x20: 3, 0x21: 3, 0x25: 3, 0x24: 4, 0x2D: 3, 0x32: 2, 0x33: 3, 0x3D: 3, 0x3F: 3,
    0x40: 2, 0x45: 3, 0x47: 3, 0x4A: 3, 0x4B: 3, 0x4C: 2, 0x4D: 3, 0x52: 3, 0x53: 2,
    0x54: 3, 0x55: 3, 0x56: 3, 0x5C: 4, 0x61: 3, 0x64: 3, 0x65: 3, 0x69: 2, 0x6D: 2,
    0x70: 5, 0x72: 3, 0x74: 3, 0x75: 3, 0x76: 2, 0x7B: 3, 0x63: 4,
}
_GS_FIXED = {
    0x21: 3, 0x24: 4, 0x2F: 3, 0x3A: 2, 0x42: 3, 0x48: 3, 0x49: 3, 0x4C: 4, 0x50: 4,
    0x54: 3, 0x57: 4, 0x5C: 4, 0x5E: 5, 0x61: 3, 0x62: 3, 0x66: 3, 0x68: 3, 0x72: 3,
    0x77: 3, 0x7C: 3,
}
_FS_FIXED = {0x21: 3, 0x26: 2, 0x2D: 3, 0x2E: 2, 0x43: 3, 0x53: 4, 0x57: 3, 0x70: 4}
_NAMES = {ESC: "ESC", GS: "GS", FS: "FS", DLE: "DLE"}

MAX_TICKET_LINES = 2000
"""A stream that never cuts is flushed as a ticket here so memory stays bounded."""


@dataclass(frozen=True)
class PrintedLine:
    """One line as it came out on paper, styled as it was when its first character printed."""

    text: str
    bold: bool = False
    width: int = 1
    height: int = 1
    align: Align = "left"
    underline: bool = False

    @property
    def double(self) -> bool:
        return self.width > 1 or self.height > 1


@dataclass(frozen=True)
class TicketCut:
    """The paper was cut: these lines are one finished ticket."""

    lines: tuple[PrintedLine, ...]


@dataclass(frozen=True)
class StatusRequest:
    """The host asked for status (DLE EOT n or GS r n) and waits for one byte."""

    command: Literal["DLE EOT", "GS r"]
    n: int


@dataclass(frozen=True)
class CounterRequest:
    """The host asked for maintenance counter `counter` (GS g 2) and waits for its answer."""

    counter: int


@dataclass(frozen=True)
class DecoderNote:
    """Something was skipped or ignored; worth a log line, never an error."""

    message: str


DecoderEvent = TicketCut | StatusRequest | CounterRequest | DecoderNote


@dataclass(frozen=True)
class _Style:
    bold: bool = False
    width: int = 1
    height: int = 1
    align: Align = "left"
    underline: bool = False


def _charmap(codec: str) -> str:
    return bytes(range(256)).decode(codec, errors="replace")


class EscposDecoder:
    """Feed it bytes in any chunks; it returns events in stream order and keeps only a
    few header bytes of an unfinished command between calls."""

    def __init__(self, columns: int = 48) -> None:
        self.columns = columns
        self._pending = bytearray()
        self._skip = 0
        self._skip_to_nul = 0
        self._style = _Style()
        self._chars = _charmap("cp437")
        self._text: list[str] = []
        self._line_style: _Style | None = None
        self._after_cr = False
        self._lines: list[PrintedLine] = []
        self._events: list[DecoderEvent] = []

    @property
    def pending_lines(self) -> int:
        """Printed lines (and a started one) that no cut has closed yet."""
        return len(self._lines) + (1 if self._text else 0)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an unfinished command held for the next feed (never more than a header)."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[DecoderEvent]:
        """Decode `data` following everything fed before; returns the events it completed."""
        buf = self._pending + data
        i = 0
        while i < len(buf):
            if self._skip:
                step = min(self._skip, len(buf) - i)
                self._skip -= step
                i += step
                continue
            if self._skip_to_nul:
                end = buf.find(0, i, i + self._skip_to_nul)
                if end >= 0:
                    self._skip_to_nul, i = 0, end + 1
                else:
                    step = min(self._skip_to_nul, len(buf) - i)
                    self._skip_to_nul -= step
                    i += step
                continue
            b = buf[i]
            if b in _NAMES:
                used = self._command(buf, i)
                if used == 0:
                    break
                i += used
            else:
                self._byte(b)
                i += 1
        self._pending = bytearray(buf[i:])
        events, self._events = self._events, []
        return events

    # -- text and line ends -------------------------------------------------------------

    def _byte(self, b: int) -> None:
        after_cr, self._after_cr = self._after_cr, False
        if b == LF:
            if not after_cr:
                self._end_line()
        elif b == CR:
            self._end_line()
            self._after_cr = True
        elif b == FF:
            self._end_line()
        elif b == HT:
            self._put(" " * (8 - len(self._text) % 8))
        elif b >= 0x20:
            self._put(self._chars[b])

    def _put(self, text: str) -> None:
        if self._line_style is None:
            self._line_style = self._style
        style = self._line_style
        room = max(1, self.columns // style.width)
        for ch in text:
            if len(self._text) >= room:  # the printer wraps at the paper edge, so do we
                self._end_line()
                self._line_style = style
            self._text.append(ch)

    def _end_line(self) -> None:
        style = self._line_style or self._style
        self._lines.append(PrintedLine("".join(self._text), style.bold, style.width,
                                       style.height, style.align, style.underline))
        self._text, self._line_style = [], None
        if len(self._lines) >= MAX_TICKET_LINES:
            self._note(f"no cut after {MAX_TICKET_LINES} lines; closing the ticket")
            self._cut()

    def _cut(self) -> None:
        if self._text:
            self._end_line()
        lines = self._lines
        self._lines = []
        while lines and not lines[-1].text.strip():
            lines.pop()
        while lines and not lines[0].text.strip():
            lines.pop(0)
        if lines:
            self._events.append(TicketCut(tuple(lines)))
        else:
            self._note("cut with nothing printed")

    def _note(self, message: str) -> None:
        self._events.append(DecoderNote(message))

    # -- commands ---------------------------------------------------------------------

    def _command(self, buf: bytearray, i: int) -> int:
        """Act on the command at buf[i]; return bytes used, or 0 if it is not complete yet."""
        self._after_cr = False
        avail = len(buf) - i
        if avail < 2:
            return 0
        prefix, cmd = buf[i], buf[i + 1]
        if prefix == DLE:
            return self._realtime(buf, i, avail)
        if prefix == ESC and cmd == 0x2A:  # ESC * m nL nH: bit image, 1 or 3 bytes per column
            if avail < 5:
                return 0
            per_column = 1 if buf[i + 2] in (0, 1) else 3
            self._skip = per_column * (buf[i + 3] + 256 * buf[i + 4])
            return 5
        if prefix == ESC and cmd == 0x44:  # ESC D n1..nk NUL: tab stops
            self._skip_to_nul = 33
            return 2
        if prefix == GS and cmd == 0x56:
            return self._gs_cut(buf, i, avail)
        if prefix == GS and cmd == 0x6B:
            return self._barcode(buf, i, avail)
        if prefix == GS and cmd == 0x67:
            return self._maintenance_counter(buf, i, avail)
        if prefix == GS and cmd == 0x76:  # GS v 0 m xL xH yL yH: raster image
            if avail < 8:
                return 0
            self._skip = (buf[i + 4] + 256 * buf[i + 5]) * (buf[i + 6] + 256 * buf[i + 7])
            return 8
        if prefix == GS and cmd == 0x2A:  # GS * x y: downloaded image of x*y*8 bytes
            if avail < 4:
                return 0
            self._skip = buf[i + 2] * buf[i + 3] * 8
            return 4
        if prefix == GS and cmd == 0x38:  # GS 8 L p1..p4: long-form graphics
            if avail < 7:
                return 0
            self._skip = int.from_bytes(buf[i + 3:i + 7], "little")
            return 7
        if prefix in (GS, FS) and cmd == 0x28:  # GS ( fn pL pH / FS ( fn pL pH
            if avail < 5:
                return 0
            self._skip = buf[i + 3] + 256 * buf[i + 4]
            return 5
        table = {ESC: _ESC_FIXED, GS: _GS_FIXED, FS: _FS_FIXED}[prefix]
        size = table.get(cmd)
        if size is None:
            self._note(f"skipped unknown {_NAMES[prefix]} 0x{cmd:02x}")
            return 2
        if avail < size:
            return 0
        args = bytes(buf[i + 2:i + size])
        if prefix == ESC:
            self._esc(cmd, args)
        elif prefix == GS:
            self._gs(cmd, args)
        return size

    def _esc(self, cmd: int, args: bytes) -> None:
        s = self._style
        n = args[0] if args else 0
        if cmd == 0x40:  # ESC @: reset modes, drop the unprinted line
            self._style, self._chars = _Style(), _charmap("cp437")
            self._text, self._line_style = [], None
        elif cmd == 0x45:
            self._style = replace(s, bold=bool(n & 1))
        elif cmd == 0x21:  # ESC ! n: font, emphasis, double height/width, underline
            self._style = replace(s, bold=bool(n & 0x08), height=2 if n & 0x10 else 1,
                                  width=2 if n & 0x20 else 1, underline=bool(n & 0x80))
        elif cmd == 0x2D:
            self._style = replace(s, underline=n in (1, 2, 0x31, 0x32))
        elif cmd == 0x61:
            align: dict[int, Align] = {0: "left", 1: "center", 2: "right"}
            self._style = replace(s, align=align.get(n & 0x0F if n >= 0x30 else n, "left"))
        elif cmd == 0x64:  # ESC d n: print the line, then feed n - 1 more
            if n or self._text:
                self._end_line()
            for _ in range(max(0, n - 1)):
                self._end_line()
        elif cmd == 0x4A and self._text:  # ESC J n: print and feed n dots
            self._end_line()
        elif cmd == 0x74:
            codec = CODEPAGES.get(n)
            if codec is None:
                self._note(f"code page {n} unknown; keeping the current one")
            else:
                self._chars = _charmap(codec)
        elif cmd in (0x69, 0x6D):  # ESC i / ESC m: obsolete full and partial cut
            self._cut()

    def _gs(self, cmd: int, args: bytes) -> None:
        n = args[0] if args else 0
        if cmd == 0x21:  # GS ! n: width multiplier in the high nibble, height in the low
            self._style = replace(self._style, width=(n >> 4 & 7) + 1, height=(n & 7) + 1)
        elif cmd == 0x72:
            self._events.append(StatusRequest("GS r", n & 0x0F))
        elif cmd == 0x49:
            self._note(f"GS I {n} (printer id) not answered")

    def _gs_cut(self, buf: bytearray, i: int, avail: int) -> int:
        """GS V m, or GS V m n for m = 65, 66, 97, 98, 103, 104 (feed, then cut)."""
        if avail < 3:
            return 0
        m = buf[i + 2]
        size = 4 if m in (65, 66, 97, 98, 103, 104) else 3
        if avail < size:
            return 0
        if m in (0, 1, 48, 49, 65, 66, 97, 98, 103, 104):
            self._cut()
        else:
            self._note(f"GS V with unknown mode {m}; not cut")
        return size

    def _maintenance_counter(self, buf: bytearray, i: int, avail: int) -> int:
        """GS g 0 m nL nH (reset a counter) or GS g 2 m nL nH (transmit it); the function is
        the ASCII digit ('0' = 0x30, '2' = 0x32), its binary value is read the same."""
        if avail < 3:
            return 0
        fn = buf[i + 2] & 0x0F if buf[i + 2] in (0x30, 0x32) else buf[i + 2]
        if fn not in (0, 2):
            self._note(f"GS g {fn} unknown")
            return 3
        if avail < 6:
            return 0
        counter = buf[i + 4] + 256 * buf[i + 5]
        if fn == 2:
            self._events.append(CounterRequest(counter))
        else:
            self._note(f"GS g 0 (reset counter {counter}) ignored")
        return 6

    def _barcode(self, buf: bytearray, i: int, avail: int) -> int:
        """GS k m d1..dk NUL (m <= 6) or GS k m n d1..dn (m >= 65)."""
        if avail < 3:
            return 0
        if buf[i + 2] <= 6:
            self._skip_to_nul = 256
            return 3
        if avail < 4:
            return 0
        self._skip = buf[i + 3]
        return 4

    def _realtime(self, buf: bytearray, i: int, avail: int) -> int:
        """DLE EOT n, DLE ENQ n, DLE DC4 fn ...; a lone DLE is an ignored control byte."""
        cmd = buf[i + 1]
        if cmd == 0x04:
            if avail < 3:
                return 0
            n = buf[i + 2]
            if 1 <= n <= 4:
                self._events.append(StatusRequest("DLE EOT", n))
                return 3
            if n in (7, 8):
                if avail < 4:
                    return 0
                self._note(f"DLE EOT {n} (extended status) not answered")
                return 4
            self._note(f"DLE EOT {n} unknown")
            return 3
        if cmd == 0x05:
            if avail < 3:
                return 0
            self._note("DLE ENQ ignored")
            return 3
        if cmd == 0x14:
            if avail < 3:
                return 0
            size = {1: 5, 2: 5, 3: 5, 7: 4, 8: 10}.get(buf[i + 2], 3)
            if avail < size:
                return 0
            self._note(f"DLE DC4 {buf[i + 2]} ignored")
            return size
        return 1
