"""Hostile SIP input, run in a network namespace that has nothing but loopback.

The probe (tests/peers/sip_hostile_probe.py) runs a real SipAgent and attacks it over UDP
from inside the namespace. There, any packet the agent might address to a host named in
a message (sip.example.com, 192.0.2.10) has no route and fails with ENETUNREACH, so "the
agent only answers the datagram's source" is checked by the kernel, not by trust. Needs
root and iproute2.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.peers.sip_hostile_probe"
TONE_FRAMES = 10  # the probe's handler plays 200 ms

# What each hostile datagram must draw from the agent (distinct statuses, in order).
EXPECTED = {
    "garbage_bytes": [], "garbage_text": [], "truncated_before_via": [],
    "unsolicited_response": [], "unparseable_ack": [],
    "truncated_invite": [400], "content_length_too_large": [400], "bad_cseq": [400],
    "nul_in_header": [400], "sip_version_3": [505],
    "huge_header": [200], "many_headers": [200], "options_foreign_hosts": [200],
    "options_ipv6_via": [200], "options_forged_received": [200],
    "invite_unknown_user": [404], "invite_unknown_user_rport_tricks": [404],
    "bye_without_dialog": [481],
}


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=10)


def run_probe_in_namespace() -> tuple[dict[str, Any], list[str], str]:
    """Create a loopback-only namespace, run the probe in it, always delete it; (summary, links, stderr)."""
    ns = f"vx-hostile-{secrets.token_hex(4)}"
    ip("netns", "add", ns)
    try:
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        links = [line.split(":")[1].strip() for line in
                 ip("netns", "exec", ns, "ip", "-o", "link").stdout.splitlines()]
        run = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", PROBE], cwd=ROOT,
                             capture_output=True, text=True, timeout=30)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    assert run.returncode == 0, f"probe failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1]), links, run.stderr


def test_hostile_sip_is_answered_only_at_its_source_in_a_loopback_only_namespace() -> None:
    assert os.geteuid() == 0, "network namespaces need root (CI runs the integration tests as root)"
    assert shutil.which("ip"), "iproute2 must be installed"
    summary, links, stderr = run_probe_in_namespace()
    context = json.dumps(summary, indent=1)[-6000:] + "\n" + stderr[-2000:]
    agent, probe = summary["agent"], summary["probe"]

    assert links == ["lo"], f"the namespace must hold only loopback: {links}"
    assert summary["foreign_send_errno"] == errno.ENETUNREACH, "a foreign send must fail in here"

    statuses = {c["name"]: c["statuses"] for c in summary["cases"]}
    assert statuses == EXPECTED, context
    for case in summary["cases"]:
        assert case["sources"] == ([agent] if case["expect"] else []), context
        if case["marks_received"]:
            assert "received=127.0.0.1" in case["top_via"], (case["name"], case["top_via"])
    assert summary["all_sources"] == [agent], context
    assert summary["final"]["statuses"] == [200], "the agent must still answer OPTIONS"

    call = summary["call"]
    assert call["statuses"] == [100, 200], context
    assert call["answer_connection"] == "127.0.0.1", context
    assert f"rport={probe.split(':')[1]}" in call["ok_top_via"], context
    assert "received=127.0.0.1" in call["ok_top_via"], context
    assert call["bye_received"], f"the agent's BYE must come to us, not to the Contact\n{context}"
    handler = call["handler"]
    assert handler["remote"] == probe, context
    assert handler["rtp_destination"] == call["probe_rtp"], "RTP must latch onto our RTP source"
    assert handler["packets_out"] == call["rtp_packets_received"] == TONE_FRAMES, context
    assert call["active_calls_after"] == 0, context

    assert summary["log_errors"] == [], context
    assert summary["log_socket_errors"] == [], context
    for expected in ("dropped unparseable datagram", "answered unparseable request", "call refused"):
        assert expected in summary["log_messages"], f"agent logs were not captured: {expected!r}"
