"""The edge plane end to end: store -> print agent -> python-escpos -> emulator, on TCP and
on a real serial line (a socat pty pair), with the printer failing in the ways kitchens see.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from appliance.edge.escpos_decoder import CounterRequest, EscposDecoder, StatusRequest, TicketCut
from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.print_agent import Backoff, PrintAgent
from appliance.edge.printer_emulator import BackgroundEmulator, PrinterEmulator, ReceivedTicket
from appliance.edge.ticket_printer import (
    PrinterCondition,
    PrinterError,
    counter_answer,
    status_byte,
)
from appliance.store.local_store import LocalStore
from sync.contracts.order import LineModifier, Order, OrderLine
from sync.ids import new_id

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 5, 2, 17, 45, tzinfo=UTC)
TENANT, DEVICE = "ten_01JDEM0000000000000000DEMO", "dev_01JDEM0000000000000000BOX1"


def submit(store: LocalStore, key: str, now: datetime = T0) -> Order:
    order, created = store.submit_order(
        tenant_id=TENANT, device_id=DEVICE, call_id=new_id("call"), caller="+31201234567",
        lines=[
            OrderLine(line_id="l1", item_id="pepperoni", name="Pepperoni pizza", size="large",
                      quantity=2, unit_price_cents=1450,
                      modifiers=[LineModifier(kind="remove", name="onions"),
                                 LineModifier(kind="extra", name="cheese")]),
            OrderLine(line_id="l2", item_id="cola", name="Cola", quantity=1, unit_price_cents=250),
        ],
        currency="EUR", blueprint_hash="sha256:test", idempotency_key=key, now=now,
    )
    assert created
    return order


def printed_events(store: LocalStore) -> list[tuple[str, str]]:
    return [(e.data.order_id, e.data.printer) for e in store.pending_events()
            if e.data.type == "ticket.printed"]


@contextlib.contextmanager
def socat_pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A real serial line: two ptys joined by socat; the emulator on one, the driver on the other."""
    printer_end, host_end = tmp_path / "printer", tmp_path / "host"
    with open(tmp_path / "socat.log", "wb") as socat_log:
        proc = subprocess.Popen(
            ["socat", "-d", "-d", f"pty,raw,echo=0,link={printer_end}",
             f"pty,raw,echo=0,link={host_end}"], stderr=socat_log,
        )
    try:
        deadline = time.monotonic() + 10
        while not (printer_end.exists() and host_end.exists()):
            assert proc.poll() is None, (tmp_path / "socat.log").read_text()
            assert time.monotonic() < deadline, "socat did not create its ptys"
            time.sleep(0.02)
        yield printer_end, host_end
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Rig:
    store: LocalStore
    emulator: PrinterEmulator
    driver: EscposTicketPrinter
    agent: PrintAgent


@pytest.fixture(params=["tcp", "serial"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """The same printer contract over both transports."""
    store = LocalStore(tmp_path / "box.sqlite3")
    out = tmp_path / "tickets"
    with contextlib.ExitStack() as stack:
        if request.param == "tcp":
            emulator = stack.enter_context(BackgroundEmulator(PrinterEmulator(out, port=0)))
            url = emulator.url
        else:
            printer_end, host_end = stack.enter_context(socat_pair(tmp_path))
            emulator = stack.enter_context(
                BackgroundEmulator(PrinterEmulator(out, serial_path=printer_end)))
            url = f"serial://{host_end}?baudrate=19200"
        driver = EscposTicketPrinter(url, timeout_s=2.0, tz=UTC)
        stack.callback(driver.close)
        yield Rig(store, emulator, driver, PrintAgent(store, driver, "kitchen"))
    store.close()


def test_ticket_is_printed_exactly_once(rig: Rig) -> None:
    order = submit(rig.store, "call-1")

    assert rig.agent.run_once(T0) == 1

    (ticket,) = rig.emulator.tickets
    assert f"ORDER #{order.number}" in ticket.text
    assert "2x LARGE PEPPERONI PIZZA" in ticket.text
    assert "** NO ONIONS **" in ticket.text
    assert "1x COLA" in ticket.text
    assert ticket.lines[0].double and ticket.lines[0].bold

    png = rig.emulator.ticket_path(ticket.seq, "png")
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.width >= 576 and image.height > 300
        image.verify()
    stored = ReceivedTicket.model_validate_json(
        rig.emulator.ticket_path(ticket.seq, "json").read_text())
    assert stored.seq == ticket.seq and stored.lines == ticket.lines
    assert rig.emulator.ticket_path(ticket.seq, "txt").read_text().startswith(
        f"ORDER #{order.number}\n")

    assert rig.agent.run_once(T0 + timedelta(seconds=1)) == 0
    assert len(rig.emulator.tickets) == 1
    assert len(list(rig.emulator.out_dir.glob("ticket-*.txt"))) == 1
    assert rig.store.action_status(order.order_id) == "succeeded"
    assert printed_events(rig.store) == [(order.order_id, "kitchen")]


def test_orders_print_in_number_order(rig: Rig) -> None:
    first, second = submit(rig.store, "call-1"), submit(rig.store, "call-2")
    assert rig.agent.run_once(T0) == 2
    headers = [t.lines[0].text for t in rig.emulator.tickets]
    assert headers == [f"ORDER #{first.number}", f"ORDER #{second.number}"]


def test_paper_out_holds_the_ticket_until_paper_is_back(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    order = submit(rig.store, "call-1")
    rig.emulator.condition = PrinterCondition.PAPER_OUT

    with caplog.at_level(logging.WARNING, logger="appliance.edge.print_agent"):
        assert rig.agent.run_once(T0) == 0
    assert rig.emulator.tickets == []
    assert rig.store.action_status(order.order_id) == "pending"
    assert printed_events(rig.store) == []
    alerts = [getattr(r, "fields", {}) for r in caplog.records if "alert" in r.getMessage()]
    assert alerts and alerts[0]["condition"] == "paper_out"

    rig.emulator.condition = PrinterCondition.READY
    assert rig.agent.run_once(T0 + timedelta(seconds=5)) == 1
    assert rig.agent.run_once(T0 + timedelta(seconds=6)) == 0
    (ticket,) = rig.emulator.tickets
    assert f"ORDER #{order.number}" in ticket.text
    assert printed_events(rig.store) == [(order.order_id, "kitchen")]


@pytest.mark.parametrize("condition", [PrinterCondition.READY, PrinterCondition.OFFLINE,
                                       PrinterCondition.PAPER_OUT, PrinterCondition.COVER_OPEN])
def test_status_reads_the_printer_condition(rig: Rig, condition: PrinterCondition) -> None:
    rig.emulator.condition = condition
    assert rig.driver.status().condition is condition


def test_printer_going_offline_mid_ticket_is_a_printer_error(rig: Rig) -> None:
    order = submit(rig.store, "call-1")
    rig.emulator.condition = PrinterCondition.COVER_OPEN
    with pytest.raises(PrinterError) as raised:
        rig.driver.print_ticket(order)
    assert raised.value.code == "printer.offline" and raised.value.retryable
    assert rig.emulator.tickets == []


def test_emulator_survives_garbage_and_answers_gs_r(tmp_path: Path) -> None:
    with BackgroundEmulator(PrinterEmulator(tmp_path / "tickets", port=0)) as emulator:
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=2) as raw:
            raw.sendall(bytes(range(256)) * 4 + b"\x1b\x7e\x1d\x99")  # every byte, odd commands
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=2) as raw:
            raw.sendall(b"\x1b@STILL HERE\n\x1dV\x00\x1dr\x01")
            assert raw.recv(1) == b"\x00"
            emulator.condition = PrinterCondition.PAPER_OUT
            raw.sendall(b"\x1dr\x01")
            assert raw.recv(1) == b"\x0f"
        assert [t.text for t in emulator.tickets] == ["STILL HERE"]


# -- a printer that is not there, or not well -------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_printer_is_unknown_and_nothing_is_claimed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    order = submit(store, "call-1")
    driver = EscposTicketPrinter(f"tcp://127.0.0.1:{free_port()}", timeout_s=1.0)

    state = driver.status()
    assert state.condition is PrinterCondition.UNKNOWN and state.detail
    with pytest.raises(PrinterError) as raised:
        driver.print_ticket(order)
    assert raised.value.code == "printer.unreachable"
    assert PrintAgent(store, driver, "kitchen").run_once(T0) == 0
    assert store.action_status(order.order_id) == "pending"


def test_a_printer_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # listens, so connects succeed, but never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        driver = EscposTicketPrinter(f"tcp://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5)
        started = time.monotonic()
        state = driver.status()
        assert state.condition is PrinterCondition.UNKNOWN
        assert "no answer" in (state.detail or "")
        store = LocalStore(tmp_path / "box.sqlite3")
        with pytest.raises(PrinterError) as raised:
            driver.print_ticket(submit(store, "call-1"))
        assert raised.value.code == "printer.no_answer"
        assert time.monotonic() - started < 5


class FlakyPrinter(socketserver.ThreadingTCPServer):
    """A real TCP printer that answers status (and, if it has one, its cut counter) but hangs
    up on its first `drops` tickets before cutting them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, drops: int, has_counter: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyHandler)
        self.drops, self.dropped, self.has_counter = drops, 0, has_counter
        self.printed: list[TicketCut] = []
        self.lock = threading.Lock()


class _FlakyHandler(socketserver.BaseRequestHandler):
    server: FlakyPrinter

    def handle(self) -> None:
        decoder = EscposDecoder()
        self.request.settimeout(5)
        while data := self.request.recv(4096):
            for event in decoder.feed(data):
                if isinstance(event, TicketCut):
                    with self.server.lock:
                        if self.server.drops:
                            self.server.drops -= 1
                            self.server.dropped += 1
                            return  # hang up before confirming
                        self.server.printed.append(event)
                elif isinstance(event, StatusRequest):
                    self.request.sendall(bytes([status_byte(PrinterCondition.READY, event.n)]))
                elif isinstance(event, CounterRequest) and self.server.has_counter:
                    with self.server.lock:
                        self.request.sendall(counter_answer(len(self.server.printed)))


def test_failed_ticket_is_retried_with_exponential_backoff(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    order = submit(store, "call-1")
    server = FlakyPrinter(drops=2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        driver = EscposTicketPrinter(f"tcp://127.0.0.1:{server.server_address[1]}", timeout_s=1.0)
        agent = PrintAgent(store, driver, "kitchen", Backoff(base_s=1.0, cap_s=60.0))

        assert agent.run_once(T0) == 0  # failure 1: next try after 1 s
        assert store.action_status(order.order_id) == "pending"
        assert agent.run_once(T0 + timedelta(seconds=0.5)) == 0  # not due: nothing sent
        assert server.dropped == 1
        assert agent.run_once(T0 + timedelta(seconds=1.1)) == 0  # failure 2: next after 2 s
        assert server.dropped == 2
        assert agent.run_once(T0 + timedelta(seconds=2.5)) == 0  # 1.1 + 2 = 3.1 not reached
        assert server.printed == []
        assert agent.run_once(T0 + timedelta(seconds=3.2)) == 1
        assert agent.run_once(T0 + timedelta(seconds=10)) == 0
        assert len(server.printed) == 1
        assert f"ORDER #{order.number}" in server.printed[0].lines[0].text
        assert printed_events(store) == [(order.order_id, "kitchen")]
    finally:
        server.shutdown()
        server.server_close()


def test_backoff_doubles_and_caps() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    assert [backoff.delay(n).total_seconds() for n in (0, 1, 2, 3, 6, 7, 500)] == [
        0, 1, 2, 4, 32, 60, 60,
    ]
    assert backoff.due(3, None, T0)
    assert not backoff.due(3, T0, T0 + timedelta(seconds=3.9))
    assert backoff.due(3, T0, T0 + timedelta(seconds=4))


# -- the voxeron-edge process ------------------------------------------------------------


def test_edge_process_prints_and_stops_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "box"
    store = LocalStore(data_dir / "box.sqlite3")
    order = submit(store, "call-1")
    with BackgroundEmulator(PrinterEmulator(tmp_path / "tickets", port=0)) as emulator:
        env = {**os.environ, "VOXERON_DATA_DIR": str(data_dir),
               "VOXERON_PRINTER_URL": emulator.url, "VOXERON_PRINTER_POLL_S": "0.05"}
        code = ("from appliance.config import BoxIdentity, PrinterConfig\n"
                "from appliance.edge.print_agent import run_edge\n"
                "run_edge(BoxIdentity(), PrinterConfig())\n")
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not emulator.tickets and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()[1]
            assert len(emulator.tickets) == 1
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    printed = [e for e in logs if e["msg"] == "ticket printed" and e["role"] == "edge"]
    assert printed and printed[0]["order_id"] == order.order_id
    assert printed[0]["action_id"].startswith("act_") and printed[0]["tenant_id"] == TENANT
    assert store.action_status(order.order_id) == "succeeded"
    assert len(emulator.tickets) == 1
