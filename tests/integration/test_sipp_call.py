"""A call placed by sipp (an independent SIP implementation) reaches a confirmed order.

The caller's speech is synthesized with Piper, G.711-encoded into an RTP pcap and played
by sipp's play_pcap_audio; the box under test is the real voxeron-voice process.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from appliance.store import LocalStore
from tests.peers.box_process import voice_box
from tests.peers.caller_audio import RATE, scripted_order_call, write_rtp_pcap
from voxeron.ports import free_port

pytestmark = [pytest.mark.sip_peer, pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parents[1] / "peers" / "uac_pcap_call.xml"



def test_sipp_call_reaches_a_confirmed_order(tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    assert sipp, "sipp (Debian package sip-tester) must be installed by `make test`"
    audio = scripted_order_call()
    pcap = tmp_path / "caller.pcap"
    assert write_rtp_pcap(pcap, audio) == len(audio) // 160
    duration_ms = int(len(audio) / RATE * 1000)
    scenario = tmp_path / "call.xml"
    scenario.write_text(SCENARIO.read_text().replace("@PCAP@", str(pcap))
                        .replace("@BYE_TIMEOUT_MS@", str(duration_ms + 20_000)))
    with voice_box(tmp_path) as box:
        run = subprocess.run(
            [sipp, f"127.0.0.1:{box.sip_port}", "-sf", str(scenario), "-m", "1", "-l", "1",
             "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)), "-mi", "127.0.0.1",
             "-mp", str(free_port(socket.SOCK_DGRAM)), "-nostdin", "-timeout",
             f"{duration_ms // 1000 + 40}s", "-trace_err", "-error_file", str(tmp_path / "err.log")],
            capture_output=True, text=True, timeout=duration_ms / 1000 + 60, cwd=tmp_path,
        )
        log = box.log()
    assert run.returncode == 0, f"sipp failed ({run.returncode}):\n{run.stdout[-2000:]}\n{log[-4000:]}"
    store = LocalStore(box.db_path)
    orders = store.orders()
    assert len(orders) == 1, log[-4000:]
    lines = {(li.item_id, li.quantity, li.size) for li in orders[0].lines}
    assert lines == {("pizza", 1, "large"), ("coke", 2, None)}
    assert [m.name for m in orders[0].lines[0].modifiers] == ["pepperoni"]
    assert orders[0].caller == "5551234"
    turns = store.turns(orders[0].call_id)
    assert [t.speaker for t in turns][:2] == ["agent", "caller"]
