"""RFC 4475 torture messages against a real SipAgent, over UDP and TCP, inside a network
namespace that has only loopback (the messages name example.com and 192.0.2.x hosts).

Each message must be parsed and answered sensibly, answered 400, or dropped when no
response can be addressed (tests/peers/rfc4475/expected.json, reasons in its README), and
the agent must keep serving: an OPTIONS afterwards gets 200 on both transports.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "peers" / "rfc4475"


def run_probe() -> dict[str, Any]:
    ns = f"vx-rfc4475-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=10)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True, timeout=10)
        run = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.peers.rfc4475.probe"],
                             cwd=ROOT, capture_output=True, text=True, timeout=90)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    assert run.returncode == 0, f"probe failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_torture_message_is_answered_sensibly_or_dropped_and_the_agent_keeps_serving() -> None:
    assert os.geteuid() == 0 and shutil.which("ip"), "network namespaces need root and iproute2"
    expected = json.loads((DATA / "expected.json").read_text())
    files = sorted(p.stem for p in DATA.glob("*.sip"))
    assert len(files) >= 40 and files == sorted(expected["udp"]), "every message needs an expectation"
    got = run_probe()
    context = json.dumps({k: got[k] for k in ("udp", "tcp", "extra")}, indent=0)[-6000:]

    assert got["udp"] == expected["udp"], context
    for name in files:
        want = expected["tcp"].get(name, {"statuses": expected["udp"][name], "closed": False})
        assert got["tcp"][name] == want, (name, got["tcp"][name], want)
    for statuses in got["udp"].values():
        assert set(statuses) <= {200, 400, 404, 405, 406, 415, 416, 420, 481, 501}, context
    assert got["extra"]["oversized_datagram"] == [200], "a 64 kB datagram is still one message"
    assert got["extra"]["tcp_endless_header"] == {"statuses": [], "closed": True}, context
    assert got["final_udp"] == [200] and got["final_tcp"] == [200], "the agent must keep serving"
    assert got["active_calls"] == 0, "no torture message may set up a call"
    assert got["sources"] == [got["agent"]], "answers only ever come from the agent's socket"
    assert got["log_errors"] == [], context
