"""A kitchen printer for the demo and the tests: ESC/POS in over TCP or a serial line,
tickets out as text, PNG and JSON files.

Both transports feed the same pure decoder. The emulator answers status queries from a
condition that can be changed while it runs; in any condition but READY it drops what it
is sent, as a printer without paper would, so the print agent's status check matters.

What the print agent's exactly-once protocol relies on, and the emulator therefore does:

* Cut counter: GS g 2 for counter 148 (cumulative autocutter operations; 20, the
  resettable one, reads the same) is answered '_' + decimal digits + NUL, and only while
  READY, since a real printer reads it from its input buffer in turn. The count goes up
  by one when, and only when, a complete ticket is cut, and lives in counters.json in
  the output directory, so a restarted emulator keeps it. `has_counter=False` makes a
  printer that ignores GS g 2 (the agent then falls back to at-least-once).
* Paper: `paper_lines` is how many lines are left on the roll (None: endless). A ticket
  longer than that prints its first lines, then the paper runs out: the rest and the cut
  are lost, the count does not move, the torn-off head is kept in `torn`, and DLE EOT
  reports paper end until `refill()`.
* Slowness: after a cut the printer is busy for `cut_delay_s` and holds its next answers
  that long; the ticket is already out (files written, counter moved) when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
import tty
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

from pydantic import BaseModel

from appliance.edge.escpos_decoder import (
    CounterRequest,
    DecoderNote,
    EscposDecoder,
    PrintedLine,
    StatusRequest,
    TicketCut,
)
from appliance.edge.ticket_image import save_ticket_png
from appliance.edge.ticket_printer import (
    CUTS_COUNTER,
    PrinterCondition,
    counter_answer,
    status_byte,
    transmit_status_byte,
)
from sync.structured_log import fields, setup_logging

log = logging.getLogger(__name__)


class TicketLineRecord(BaseModel):
    """One line of a received ticket as stored in ticket-<seq>.json."""

    text: str
    bold: bool
    double: bool
    align: Literal["left", "center", "right"]
    width: int = 1
    height: int = 1

    @classmethod
    def of(cls, line: PrintedLine) -> TicketLineRecord:
        return cls(text=line.text, bold=line.bold, double=line.double, align=line.align,
                   width=line.width, height=line.height)


class ReceivedTicket(BaseModel):
    """A ticket the emulator printed (cut), as written to ticket-<seq>.json."""

    seq: int
    received_at: datetime
    lines: list[TicketLineRecord]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def _next_seq(out_dir: Path) -> int:
    """Continue numbering after tickets already in `out_dir`, so a restart overwrites none."""
    seqs = [int(p.stem.split("-", 1)[1]) for p in out_dir.glob("ticket-*.json")
            if p.stem.split("-", 1)[1].isdigit()]
    return max(seqs, default=0) + 1


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Readers (the demo, a test) never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class Counters(BaseModel):
    """The printer's maintenance counters as kept in counters.json next to the tickets."""

    cuts: int = 0


class PrinterEmulator:
    """An ESC/POS printer on TCP (port 0 picks a free one) or on a serial/pty device path.

    `condition`, `paper_lines` and `cut_delay_s` may be changed at any time, from any
    thread; status answers follow them."""

    def __init__(self, out_dir: Path, host: str = "127.0.0.1", port: int = 9100,
                 serial_path: Path | str | None = None, columns: int = 48,
                 condition: PrinterCondition = PrinterCondition.READY,
                 idle_timeout_s: float = 60.0, has_counter: bool = True,
                 paper_lines: int | None = None, cut_delay_s: float = 0.0) -> None:
        self.out_dir = Path(out_dir)
        self.host, self.columns, self.idle_timeout_s = host, columns, idle_timeout_s
        self.serial_path = Path(serial_path) if serial_path else None
        self.condition = condition
        self.has_counter, self.paper_lines, self.cut_delay_s = has_counter, paper_lines, cut_delay_s
        self.torn: list[list[str]] = []
        self._busy_until = 0.0
        self._counters = Counters()
        self._requested_port = port
        self._port: int | None = None
        self._server: asyncio.Server | None = None
        self._serial_task: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tickets: list[ReceivedTicket] = []
        self._seq = 0

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0); only in TCP mode, after start."""
        if self._port is None:
            raise RuntimeError("the emulator is not listening on TCP")
        return self._port

    @property
    def url(self) -> str:
        """The PrinterConfig url that reaches this emulator."""
        if self.serial_path is not None:
            return f"serial://{self.serial_path}"
        return f"tcp://{self.host}:{self.port}"

    @property
    def tickets(self) -> list[ReceivedTicket]:
        """Tickets printed since start, oldest first (a copy: safe from another thread)."""
        return list(self._tickets)

    @property
    def cuts(self) -> int:
        """The autocutter count, as GS g 2 reports it."""
        return self._counters.cuts

    def refill(self, lines: int | None = None) -> None:
        """Put a new roll in (`lines` long, None: endless) and close the cover: READY."""
        self.paper_lines = lines
        self.condition = PrinterCondition.READY

    def _counters_path(self) -> Path:
        return self.out_dir / "counters.json"

    def ticket_path(self, seq: int, suffix: str) -> Path:
        """Where ticket `seq` was written; suffix is 'txt', 'png' or 'json'."""
        return self.out_dir / f"ticket-{seq}.{suffix}"

    async def start(self) -> None:
        """Listen on TCP, or start reading the serial device."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._seq = _next_seq(self.out_dir)
        if self._counters_path().exists():
            self._counters = Counters.model_validate_json(self._counters_path().read_text())
        if self.serial_path is not None:
            # Open before returning, so bytes sent right after start() are not flushed away.
            fd = self._open_serial(self.serial_path)
            self._serial_task = asyncio.create_task(self._serve_serial(self.serial_path, fd))
            log.info("printer emulator reading serial", extra=fields(path=str(self.serial_path)))
            return
        self._server = await asyncio.start_server(self._on_client, self.host, self._requested_port)
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("printer emulator listening", extra=fields(host=self.host, port=self._port,
                                                           out_dir=str(self.out_dir)))

    async def stop(self) -> None:
        """Stop listening and drop open connections; tickets already written stay."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None
        if self._serial_task is not None:
            self._serial_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serial_task
            self._serial_task = None

    # -- what a printer does with bytes ---------------------------------------------

    def _consume(self, decoder: EscposDecoder, data: bytes) -> bytes:
        """Act on `data`; returns the answers owed to the host, in stream order."""
        out = bytearray()
        for event in decoder.feed(data):
            if isinstance(event, TicketCut):
                self._on_ticket(event.lines)
            elif isinstance(event, StatusRequest):
                answer = status_byte if event.command == "DLE EOT" else transmit_status_byte
                out.append(answer(self.condition, event.n))
            elif isinstance(event, CounterRequest):
                out += self._counter(event.counter)
            elif isinstance(event, DecoderNote):
                log.info("escpos note", extra=fields(note=event.message))
        return bytes(out)

    def _counter(self, counter: int) -> bytes:
        if not self.has_counter or self.condition is not PrinterCondition.READY:
            return b""  # no counter, or offline: GS g 2 waits in a buffer we drop
        if counter not in (CUTS_COUNTER, CUTS_COUNTER - 128):
            log.info("maintenance counter not kept", extra=fields(counter=counter))
            return counter_answer(0)
        return counter_answer(self._counters.cuts)

    def _answer_delay_s(self) -> float:
        """How long the host waits for answers: the rest of a cut's busy time."""
        return max(0.0, self._busy_until - time.monotonic())

    def _on_ticket(self, lines: tuple[PrintedLine, ...]) -> None:
        condition = self.condition
        if condition is not PrinterCondition.READY:
            log.warning("ticket discarded: printer not ready",
                        extra=fields(condition=str(condition), lines=len(lines)))
            return
        if self.paper_lines is not None and len(lines) > self.paper_lines:
            self._paper_runs_out(lines)
            return
        if self.paper_lines is not None:
            self.paper_lines -= len(lines)
        ticket = ReceivedTicket(seq=self._seq, received_at=datetime.now(UTC),
                                lines=[TicketLineRecord.of(line) for line in lines])
        self._seq += 1
        _write_atomically(self.ticket_path(ticket.seq, "txt"),
                          lambda p: p.write_text(ticket.text + "\n", encoding="utf-8"))
        _write_atomically(self.ticket_path(ticket.seq, "png"),
                          lambda p: save_ticket_png(lines, p, self.columns))
        _write_atomically(self.ticket_path(ticket.seq, "json"),
                          lambda p: p.write_text(ticket.model_dump_json(indent=2), encoding="utf-8"))
        self._counters = Counters(cuts=self._counters.cuts + 1)
        _write_atomically(self._counters_path(),
                          lambda p: p.write_text(self._counters.model_dump_json(), encoding="utf-8"))
        self._busy_until = time.monotonic() + self.cut_delay_s
        self._tickets.append(ticket)
        log.info("ticket printed", extra=fields(seq=ticket.seq, lines=len(lines),
                                                first_line=lines[0].text, cuts=self._counters.cuts))

    def _paper_runs_out(self, lines: tuple[PrintedLine, ...]) -> None:
        """The roll ends inside this ticket: its head is on paper, the rest and the cut lost."""
        head = [line.text for line in lines[: self.paper_lines or 0]]
        self.torn.append(head)
        self.paper_lines = 0
        self.condition = PrinterCondition.PAPER_OUT
        log.warning("paper ran out mid-ticket", extra=fields(
            printed_lines=len(head), lost_lines=len(lines) - len(head)))

    # -- transports -----------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = EscposDecoder(self.columns)
        peer = str(writer.get_extra_info("peername"))
        self._writers.add(writer)
        try:
            while data := await asyncio.wait_for(reader.read(4096), self.idle_timeout_s):
                if answers := self._consume(decoder, data):
                    if delay := self._answer_delay_s():
                        await asyncio.sleep(delay)
                    writer.write(answers)
                    await writer.drain()
        except TimeoutError:
            log.info("idle connection closed", extra=fields(peer=peer))
        except ConnectionError as exc:
            log.info("connection lost", extra=fields(peer=peer, error=str(exc)))
        finally:
            self._writers.discard(writer)
            if decoder.pending_lines:
                log.warning("connection closed before a cut; lines dropped",
                            extra=fields(peer=peer, lines=decoder.pending_lines))
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    def _open_serial(path: Path) -> int | None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            log.warning("serial device unavailable", extra=fields(path=str(path), error=str(exc)))
            return None
        try:
            tty.setraw(fd)  # no echo, no line discipline: ESC/POS is binary
        except OSError as exc:
            os.close(fd)
            log.warning("not a serial device", extra=fields(path=str(path), error=str(exc)))
            return None
        return fd

    async def _serve_serial(self, path: Path, fd: int | None) -> None:
        """Read the device until stopped; reopen it if it goes away (a pty peer restarting)."""
        loop = asyncio.get_running_loop()
        while True:
            if fd is None:
                await asyncio.sleep(0.5)
                fd = self._open_serial(path)
                continue
            decoder = EscposDecoder(self.columns)
            gone = asyncio.Event()

            def reply(data: bytes, fd: int = fd) -> None:
                try:
                    os.write(fd, data)
                except OSError as exc:
                    log.warning("serial write failed", extra=fields(error=str(exc)))

            def readable(fd: int = fd, decoder: EscposDecoder = decoder,
                         gone: asyncio.Event = gone) -> None:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    return
                except OSError as exc:
                    log.warning("serial read failed", extra=fields(error=str(exc)))
                    data = b""
                if data:
                    if answers := self._consume(decoder, data):
                        loop.call_later(self._answer_delay_s(), reply, answers)
                else:
                    gone.set()
                    loop.remove_reader(fd)

            loop.add_reader(fd, readable)
            try:
                await gone.wait()
            finally:
                loop.remove_reader(fd)
                os.close(fd)
            fd = None


class BackgroundEmulator:
    """Runs a PrinterEmulator on its own event-loop thread, for synchronous code and tests."""

    def __init__(self, emulator: PrinterEmulator) -> None:
        self.emulator = emulator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="printer-emulator",
                                        daemon=True)

    def __enter__(self) -> PrinterEmulator:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.emulator.start(), self._loop).result(timeout=10)
        except BaseException:
            self._halt()
            raise
        return self.emulator

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.emulator.stop(), self._loop).result(timeout=10)
        finally:
            self._halt()

    def _halt(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def serve_emulator(host: str, port: int, out_dir: Path, serial_path: str | None = None,
                         stop: asyncio.Event | None = None, *, has_counter: bool = True,
                         paper_lines: int | None = None, cut_delay_s: float = 0.0) -> None:
    """Run an emulator until `stop` is set (or the task is cancelled)."""
    emulator = PrinterEmulator(out_dir, host=host, port=port, serial_path=serial_path,
                               has_counter=has_counter, paper_lines=paper_lines,
                               cut_delay_s=cut_delay_s)
    await emulator.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def toggle(condition: PrinterCondition) -> None:
        if emulator.condition is condition:
            emulator.refill()  # paper back in (an endless roll), cover closed
        else:
            emulator.condition = condition
        log.warning("printer condition changed", extra=fields(condition=str(emulator.condition)))

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        # An operator can pull the paper or open the cover of the demo printer: kill -USR1/-USR2.
        loop.add_signal_handler(signal.SIGUSR1, toggle, PrinterCondition.PAPER_OUT)
        loop.add_signal_handler(signal.SIGUSR2, toggle, PrinterCondition.COVER_OPEN)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def run_emulator(host: str = "127.0.0.1", port: int = 9100, out_dir: Path = Path("var/tickets"),
                 serial_path: str | None = None, *, has_counter: bool = True,
                 paper_lines: int | None = None, cut_delay_s: float = 0.0) -> None:
    """Blocking entry of `voxeron printer-emulator`: serve until SIGTERM or Ctrl-C. The
    keyword options make a printer without a cut counter, a short roll, or a slow cutter."""
    setup_logging("printer-emulator")
    asyncio.run(serve_emulator(host, port, out_dir, serial_path, has_counter=has_counter,
                               paper_lines=paper_lines, cut_delay_s=cut_delay_s))
