"""SIP/RTP transport against sipp, an independent SIP implementation, on loopback.

sipp calls a bare SipAgent (INVITE, ACK, RTP from a pcap, answers our BYE), and our
scripted caller calls sipp's built-in UAS. The whole box is tested with sipp elsewhere.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from tests.integration.sip_phone import tone
from tests.peers.caller_audio import timeline, write_rtp_pcap
from voxeron.caller import place_call
from voxeron.caller_script import frame_dbfs
from voxeron.ports import free_port

pytestmark = pytest.mark.sip_peer

SCENARIO = Path(__file__).resolve().parents[1] / "peers" / "uac_pcap_call.xml"


def sipp() -> str:
    path = shutil.which("sipp")
    assert path, "sipp (Debian package sip-tester) must be installed by `make test`"
    return path


def udp_port() -> str:
    return str(free_port(socket.SOCK_DGRAM))


def test_sipp_calls_the_agent(tmp_path: Path) -> None:
    heard: dict[str, object] = {}

    async def listen(call: CallInfo, media: MediaChannel) -> None:
        heard["caller"] = call.caller
        await media.play(tone(0.5))
        frames = voiced = 0
        async for frame in media.frames():
            frames += 1
            voiced += frame_dbfs(frame) > -40
            if frames == 150:  # 3 s of the caller's stream, then hang up
                break
        heard["voiced"] = voiced

    async def scenario() -> int:
        agent = SipAgent("127.0.0.1", 0, ["order"], listen, rtp_host="127.0.0.1")
        await agent.start()
        try:
            pcap = tmp_path / "caller.pcap"
            write_rtp_pcap(pcap, timeline([tone(1.0, 600.0)], first_wait_s=1.0, gaps_s=[3.0]))
            script = tmp_path / "call.xml"
            script.write_text(SCENARIO.read_text().replace("@PCAP@", str(pcap))
                              .replace("@BYE_TIMEOUT_MS@", "15000"))
            proc = await asyncio.create_subprocess_exec(
                sipp(), f"127.0.0.1:{agent.port}", "-sf", str(script), "-m", "1", "-i", "127.0.0.1",
                "-p", udp_port(), "-mi", "127.0.0.1", "-mp", udp_port(), "-nostdin", "-timeout", "30s",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=tmp_path)
            return await asyncio.wait_for(proc.wait(), 40)
        finally:
            await agent.stop()

    assert asyncio.run(scenario()) == 0  # sipp saw 200, sent ACK, got and answered our BYE
    assert heard["caller"] == "5551234"
    assert 40 <= heard["voiced"] <= 60  # type: ignore[operator]  # the 1 s tone = 50 frames


def test_caller_calls_sipp_uas(tmp_path: Path) -> None:
    class Voice:
        def synthesize(self, text: str) -> np.ndarray:
            return tone(0.3)

    async def scenario() -> tuple[int, object]:
        port = udp_port()
        proc = await asyncio.create_subprocess_exec(
            sipp(), "-sn", "uas", "-i", "127.0.0.1", "-p", port, "-m", "1", "-mi", "127.0.0.1",
            "-mp", udp_port(), "-nostdin", "-timeout", "20s",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=tmp_path)
        await asyncio.sleep(0.5)  # sipp binds its port
        events: list[str] = []
        report = await place_call(f"sip:service@127.0.0.1:{port}", ["hello"], tts=Voice(),
                                  give_up_s=1.0, max_call_s=15, on_event=lambda k, t, ts: events.append(k))
        assert (report.status_code, report.agent_hung_up) == (200, False)  # sipp never speaks
        assert events == ["ringing", "answered", "hangup"]
        return await asyncio.wait_for(proc.wait(), 10), report.hangup_reason

    rc, reason = asyncio.run(scenario())
    assert rc == 0 and reason == "agent silent for 1 s"  # sipp got our BYE and answered it
