"""The README's first command, end to end: `voxeron demo` must verify every step and exit 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "voxeron", "demo", "--dir", str(work)],
                         capture_output=True, text=True, timeout=280)
    out = run.stdout
    assert run.returncode == 0, out[-4000:] + run.stderr[-2000:]
    # the governed steps, each verified and stamped, before the call
    for step in (r"tenant \S+ onboarded", r"two tenant tokens minted", r"box \S+ enrolled",
                 r"Square POS integration configured", r"approved by the second token, promoted",
                 r"box reports rollout v\d+ applied"):
        assert re.search(r"\[\s*\d+\.\d+s\] .*" + step, out), step
    assert (work / "box" / "enrolment" / "device.crt").read_text().startswith("-----BEGIN CERT")
    # both sides of the conversation, with timestamps; the greeting is the rolled-out one
    assert re.search(r"\[\s*\d+\.\d+s\] agent says: Thanks for calling Tony's Pizza Napoli", out)
    assert re.search(r"\[\s*\d+\.\d+s\] caller says: .*pepperoni", out)
    # the off-menu request got a spoken repair prompt
    assert re.search(r"agent says: .*don't have sushi roll", out, re.IGNORECASE)
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("DEMO OK: order ord_")
    assert "ticket printed" in summary and "cloud synced" in summary
    assert re.search(r"rollout v\d+ applied", summary)
    assert "POS orders 1 |" in summary and "dashboard shows it" in summary
    latencies = re.search(r"first audio\) ms \[([\d, ]+)\]", summary)
    assert latencies and len(latencies.group(1).split(",")) == 4
    # the ticket exists as text and PNG, and never lists the refused item
    ticket = next((work / "tickets").glob("ticket-*.txt")).read_text()
    assert "PEPPERONI" in ticket and "SUSHI" not in ticket.upper()
    assert (work / "tickets" / "ticket-1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
