"""Short interop scenarios played by sipp (an independent SIP implementation) against a real
SipAgent on loopback: digest auth, CANCEL, BYE both ways, hold/resume and hold timeout,
RFC 4733 DTMF from a pcap, a REFER to the staff line, and a call over TCP.

No speech models: each handler does only what the scenario needs, so each run is seconds.
sipp's exit code says whether every message it expected came (0 = all scenario steps passed).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from appliance.voice.sip_access import InboundAccess
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.sip_refer import TransferOutcome, TransferResult, staff_uri
from tests.peers.caller_audio import write_dtmf_pcap
from voxeron.ports import free_port

pytestmark = pytest.mark.sip_peer

PEERS = Path(__file__).resolve().parents[1] / "peers"
Handler = Callable[[CallInfo, MediaChannel], Awaitable[None]]


def sipp() -> str:
    path = shutil.which("sipp")
    assert path, "sipp (Debian package sip-tester) must be installed by `make test`"
    return path


async def idle(call: CallInfo, media: MediaChannel) -> None:
    await media.closed.wait()


def play(tmp_path: Path, scenario: str, handler: Handler, *, transport: str = "u1",
         substitutions: dict[str, str] | None = None,
         on_agent: Callable[[SipAgent], None] | None = None, **options: object) -> tuple[int, str]:
    """Run one sipp scenario against a fresh SipAgent; (sipp exit code, sipp's error log)."""
    text = (PEERS / scenario).read_text()
    for key, value in (substitutions or {}).items():
        text = text.replace(key, value)
    script = tmp_path / scenario
    script.write_text(text)
    errors = tmp_path / f"{scenario}.err"

    async def main() -> int:
        agent = SipAgent("127.0.0.1", 0, ["order"], handler, rtp_host="127.0.0.1", t1=0.1,
                         tcp=transport == "t1", **options)  # type: ignore[arg-type]
        await agent.start()
        if on_agent is not None:
            on_agent(agent)
        try:
            kind = socket.SOCK_STREAM if transport == "t1" else socket.SOCK_DGRAM
            proc = await asyncio.create_subprocess_exec(
                sipp(), f"127.0.0.1:{agent.port}", "-sf", str(script), "-m", "1", "-t", transport,
                "-i", "127.0.0.1", "-p", str(free_port(kind)), "-mi", "127.0.0.1",
                "-mp", str(free_port(socket.SOCK_DGRAM)), "-nostdin", "-timeout", "20s",
                "-trace_err", "-error_file", str(errors),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=tmp_path)
            rc = await asyncio.wait_for(proc.wait(), 30)
            for _ in range(100):  # let the agent finish the call (BYE answered, handler done)
                if agent.active_calls == 0:
                    break
                await asyncio.sleep(0.05)
            assert agent.active_calls == 0, "every call must be over when sipp is done"
            return rc
        finally:
            await agent.stop()

    rc = asyncio.run(main())
    return rc, errors.read_text()[-3000:] if errors.exists() else ""


def test_digest_challenge_on_invite(tmp_path: Path) -> None:
    calls: list[str] = []

    async def record(call: CallInfo, media: MediaChannel) -> None:
        calls.append(call.caller)
        await media.closed.wait()

    access = InboundAccess([], {"alice": "s3cret"})  # loopback is not trusted here: challenge
    rc, err = play(tmp_path, "uac_digest_invite.xml", record, access=access)
    assert rc == 0, err
    assert calls == ["5551234"], "only the authenticated INVITE sets up a call"


def test_cancel_before_answer_gets_487(tmp_path: Path) -> None:
    rc, err = play(tmp_path, "uac_cancel.xml", idle, answer_after_s=2.0)
    assert rc == 0, err


def test_bye_from_the_caller_ends_the_handler(tmp_path: Path) -> None:
    ended: list[bool] = []

    async def watch(call: CallInfo, media: MediaChannel) -> None:
        await media.closed.wait()
        ended.append(True)

    rc, err = play(tmp_path, "uac_bye_from_caller.xml", watch)
    assert rc == 0, err
    assert ended == [True]


def test_bye_from_the_box_when_the_handler_is_done(tmp_path: Path) -> None:
    async def brief(call: CallInfo, media: MediaChannel) -> None:
        await asyncio.sleep(0.5)

    rc, err = play(tmp_path, "uac_bye_from_box.xml", brief)
    assert rc == 0, err


def test_hold_and_resume_by_reinvite(tmp_path: Path) -> None:
    rc, err = play(tmp_path, "uac_hold_resume.xml", idle)
    assert rc == 0, err  # sipp checked a=recvonly in the hold answer and a=sendrecv after


def test_a_caller_left_on_hold_is_hung_up(tmp_path: Path) -> None:
    rc, err = play(tmp_path, "uac_hold_timeout.xml", idle, hold_timeout_s=1.0)
    assert rc == 0, err


def test_rfc4733_dtmf_from_sipp(tmp_path: Path) -> None:
    pcap = tmp_path / "dtmf.pcap"
    assert write_dtmf_pcap(pcap, "12#0") == 32
    digits: list[str] = []

    async def keypad(call: CallInfo, media: MediaChannel) -> None:
        got = asyncio.Event()

        def on_digit(digit: str) -> None:
            digits.append(digit)
            if len(digits) == 4:
                got.set()

        media.on_dtmf(on_digit)
        await asyncio.wait_for(got.wait(), 8)

    rc, err = play(tmp_path, "uac_dtmf_pcap.xml", keypad, substitutions={"@PCAP@": str(pcap)})
    assert rc == 0, err
    assert digits == ["1", "2", "#", "0"], "each press once, in order"


def test_refer_to_the_staff_line_received_by_sipp(tmp_path: Path) -> None:
    results: list[TransferResult] = []
    agents: list[SipAgent] = []

    async def transfer(call: CallInfo, media: MediaChannel) -> None:
        results.append(await agents[0].transfer(call.call_id, staff_uri("sip:staff@127.0.0.1:5098"), 8.0))

    rc, err = play(tmp_path, "uac_receives_refer.xml", transfer, on_agent=agents.append)
    assert rc == 0, err
    assert [r.outcome for r in results] == [TransferOutcome.TRANSFERRED]


def test_a_call_over_tcp(tmp_path: Path) -> None:
    rc, err = play(tmp_path, "uac_bye_from_caller.xml", idle, transport="t1")
    assert rc == 0, err
