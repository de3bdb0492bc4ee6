"""kill -9 of a real `voxeron appliance edge` between "bytes sent" and "marked succeeded": the
restarted process settles the ticket by the printer's cut counter and never reprints it.

The window is made wide by a slow printer (the emulator's cut_delay_s: after a cut it is
busy and answers the agent's confirming status query late), not by pausing the agent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from appliance.edge.printer_emulator import BackgroundEmulator, PrinterEmulator
from appliance.store.local_store import LocalStore
from tests.integration.test_print_agent import REPO, printed_events, submit

VOXERON = str(REPO / ".venv" / "bin" / "voxeron")


def start_edge(data_dir: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VOXERON_DATA_DIR": str(data_dir), "VOXERON_PRINTER_URL": url,
           "VOXERON_PRINTER_POLL_S": "0.05"}
    with open(log, "ab") as err:
        return subprocess.Popen([VOXERON, "appliance", "edge"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
             seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)


def test_sigkill_after_the_bytes_went_out_never_reprints(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "box", tmp_path / "edge.log"
    store = LocalStore(data_dir / "box.sqlite3")
    order = submit(store, "call-1")
    emulator = PrinterEmulator(tmp_path / "tickets", port=0, cut_delay_s=2.0)
    with BackgroundEmulator(emulator):
        first = start_edge(data_dir, emulator.url, log)
        try:
            wait_for(lambda: bool(emulator.tickets), first, log)
            first.send_signal(signal.SIGKILL)  # the agent is waiting for the slow answer
            first.wait(timeout=10)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert first.returncode == -signal.SIGKILL
        assert store.action_status(order.order_id) == "printing"  # killed inside the window
        assert emulator.cuts == 1

        emulator.cut_delay_s = 0.0
        second = start_edge(data_dir, emulator.url, log)
        try:
            wait_for(lambda: store.action_status(order.order_id) == "succeeded", second, log)
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        assert len(emulator.tickets) == 1 and emulator.cuts == 1
        assert len(list(emulator.out_dir.glob("ticket-*.json"))) == 1
    assert printed_events(store) == [(order.order_id, "kitchen")]
    logs = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    settled = [e for e in logs if e["msg"] == "ticket came out before it was marked: not printed again"]
    assert settled and settled[0]["order_id"] == order.order_id
    assert settled[0]["cuts_before"] == 0 and settled[0]["cuts_after"] == 1
