"""The SIP agent over real UDP on 127.0.0.1, driven by a hand-written test phone.

No mocks: the test speaks SIP and RTP on its own sockets. Assertions are about what arrives
(status codes, headers, packet counts, audio level), never about how long a sleep took.
"""

from __future__ import annotations

import asyncio

import pytest

from appliance.voice.g711 import ulaw_decode, ulaw_encode
from appliance.voice.rtp import RtpPacket, parse_rtp
from appliance.voice.sdp import negotiate_audio, parse_sdp
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.sip_message import (
    SipParseError,
    SipRequest,
    SipResponse,
    build_response,
    parse_message,
)
from sync.ids import id_kind
from tests.integration.sip_phone import Phone, eventually, idle, run, tone, udp
from voxeron.caller_script import frame_dbfs
from voxeron.ports import sip_options_ok


def test_options_is_answered_at_the_source_address() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        probe = phone.request("OPTIONS", "probe", via="phone.invalid:9")  # Via names elsewhere
        phone.send(probe)
        ok = await phone.expect(200)
        assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= {m.strip() for m in ok.headers.get("Allow").split(",")}
        assert ok.headers.get("Accept") == "application/sdp" and ok.to_addr.tag
        assert ok.vias[0].host == "phone.invalid"  # copied, and not used to route
        assert ("received", "127.0.0.1") in ok.vias[0].params
        phone.send(probe)  # a retransmission gets the same answer
        assert (await phone.expect(200)).to_addr.tag == ok.to_addr.tag
        phone.send(phone.request("OPTIONS", "probe", branch="z9hG4bKrport"))
        assert ("rport", str(phone.port)) in (await phone.expect(200)).vias[0].params
        assert await asyncio.to_thread(sip_options_ok, agent.port, 3.0)  # the readiness probe
        phone.close()

    run(scenario, idle)


def test_unknown_user_gets_404_retransmitted_until_ack() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(phone.invite(user="nobody"))
        first = await phone.expect(404)
        again = await phone.expect(404)  # retransmitted until the ACK (T1 = 50 ms here)
        assert again.to_addr.tag == first.to_addr.tag
        phone.send(phone.request("ACK", "nobody", to_tag=first.to_addr.tag))  # same branch
        await phone.quiet(0.1)  # drain any retransmission already in flight
        assert await phone.quiet(0.5) == []
        assert agent.active_calls == 0
        phone.close()

    run(scenario, idle, t1=0.05)


def test_garbage_is_dropped_or_answered_400_and_the_agent_keeps_serving() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        for junk in (b"\x00\xffgarbage", bytes(range(256)), b"\r\n\r\n", b"hello world", b"SIP/2.0 200 OK\r\n\r\n"):
            phone.send(junk)
        assert await phone.quiet(0.3) == []  # nothing recoverable: dropped (and logged)
        phone.send(phone.invite().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"))
        raw = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(phone.sip, 65535), 3)
        with pytest.raises(SipParseError):
            parse_message(raw)  # our 400 faithfully echoes the broken CSeq
        assert raw.startswith(b"SIP/2.0 400 Bad Request\r\n")
        assert f"branch={phone.branch}".encode() in raw and f"Call-ID: {phone.call_id}".encode() in raw
        assert b'Warning: 399 voxeron "' in raw
        phone.send(phone.request("OPTIONS", branch="z9hG4bKv").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
        assert (await phone.expect(505)).vias[0].branch == "z9hG4bKv"
        phone.send(phone.request("OPTIONS", branch="z9hG4bKafter"))
        assert (await phone.expect(200)).vias[0].branch == "z9hG4bKafter"
        phone.close()

    run(scenario, idle)


def test_other_methods_and_unknown_dialogs() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(phone.request("MESSAGE", branch="z9hG4bKm"))
        refused = await phone.expect(405)
        assert "INVITE" in refused.headers.get("Allow")
        phone.send(phone.request("FROB", branch="z9hG4bKf"))
        await phone.expect(501)
        phone.send(phone.request("BYE", branch="z9hG4bKb", to_tag="nope"))
        await phone.expect(481)
        phone.send(phone.request("CANCEL", branch="z9hG4bKnothing"))
        await phone.expect(481)
        phone.send(phone.request("INVITE", body=phone.sdp(formats="18 9"), branch="z9hG4bKg729"))
        assert "no common codec" in (await phone.expect(488)).headers.get("Warning")
        phone.close()

    run(scenario, idle)


def test_echo_call_from_invite_to_bye() -> None:
    calls: list[CallInfo] = []
    finished = asyncio.Event()
    closed_seen: list[bool] = []

    async def echo(call: CallInfo, media: MediaChannel) -> None:
        calls.append(call)
        playing: list[asyncio.Task[None]] = []
        async for frame in media.frames():
            playing.append(asyncio.create_task(media.play(frame)))
        closed_seen.append(media.closed.is_set())
        finished.set()

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(phone.invite())
        trying = await phone.recv()
        assert isinstance(trying, SipResponse) and trying.status == 100 and trying.to_addr.tag is None
        ok = await phone.expect(200)
        answer = negotiate_audio(parse_sdp(ok.body))
        assert (answer.encoding, answer.payload_type, answer.dtmf_payload_type) == ("PCMU", 0, 101)
        assert answer.remote_address == "127.0.0.1" and ok.content_type == "application/sdp"
        assert ok.to_addr.tag and ok.headers.get("Contact").startswith("<sip:order@127.0.0.1:")
        phone.ack(ok)
        await phone.quiet(0.1)  # drain any retransmission already in flight
        assert await phone.quiet(0.3) == []  # ACK stopped the 200 retransmissions (T1 = 50 ms)
        assert len(calls) == 1
        info = calls[0]
        assert id_kind(info.call_id) == "call" and info.sip_call_id == phone.call_id
        assert (info.caller, info.to_user, info.remote) == ("5551234", "order", ("127.0.0.1", phone.port))
        assert info.from_uri == "sip:5551234@127.0.0.1"

        voice = tone(1.0)
        media_addr = ("127.0.0.1", answer.remote_port)
        for i in range(50):
            chunk = voice[i * 160:(i + 1) * 160]
            phone.rtp.sendto(RtpPacket(0, 1000 + i, i * 160, 0x1234, ulaw_encode(chunk), i == 0).to_bytes(), media_addr)
            await asyncio.sleep(0.02)
        loop = asyncio.get_running_loop()
        echoed: list[RtpPacket] = []
        while len(echoed) < 50:
            echoed.append(parse_rtp(await asyncio.wait_for(loop.sock_recv(phone.rtp, 2048), 3)))
        audio = ulaw_decode(b"".join(p.payload for p in echoed))
        assert frame_dbfs(audio) > -20  # the tone came back, not silence
        assert [p.sequence - echoed[0].sequence for p in echoed] == list(range(50))

        phone.send(phone.request("BYE", cseq=2, branch="z9hG4bKbye", to_tag=ok.to_addr.tag))
        await phone.expect(200)
        await asyncio.wait_for(finished.wait(), 3)
        assert closed_seen == [True]
        assert [m for m in await phone.quiet(0.3) if isinstance(m, SipRequest)] == []  # no BYE back
        assert agent.active_calls == 0
        phone.close()

    run(scenario, echo, t1=0.05)


def test_invite_retransmission_does_not_create_a_second_call() -> None:
    calls: list[CallInfo] = []

    async def count(call: CallInfo, media: MediaChannel) -> None:
        calls.append(call)
        await media.closed.wait()

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(phone.invite())
        phone.send(phone.invite())  # retransmitted before any answer
        ok = await phone.expect(200)
        phone.send(phone.invite())  # and after the 200
        again = await phone.expect(200)
        assert again.to_addr.tag == ok.to_addr.tag and again.body == ok.body
        phone.ack(ok)
        assert await eventually(lambda: len(calls) == 1)
        await asyncio.sleep(0.2)
        assert len(calls) == 1 and agent.active_calls == 1
        phone.send(phone.request("BYE", cseq=2, branch="z9hG4bKbye", to_tag=ok.to_addr.tag))
        await phone.expect(200)
        phone.close()

    run(scenario, count)


def test_cancel_before_answer_gets_487() -> None:
    calls: list[CallInfo] = []

    async def never(call: CallInfo, media: MediaChannel) -> None:
        calls.append(call)

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(phone.invite())
        await phone.expect(180)  # ringing for 3 s before answering
        phone.send(phone.request("CANCEL"))
        responses = [await phone.recv(), await phone.recv()]
        by_method = {r.cseq.method: r for r in responses if isinstance(r, SipResponse)}
        assert by_method["CANCEL"].status == 200 and by_method["INVITE"].status == 487
        phone.send(phone.request("ACK", to_tag=by_method["INVITE"].to_addr.tag))
        assert [m for m in await phone.quiet(3.5) if isinstance(m, SipResponse) and m.status == 200] == []
        assert calls == [] and agent.active_calls == 0
        phone.close()

    run(scenario, never, answer_after_s=3.0)


def test_busy_beyond_max_calls() -> None:
    async def scenario(agent: SipAgent) -> None:
        first, second = Phone(agent.port), Phone(agent.port)
        first.send(first.invite())
        ok = await first.expect(200)
        first.ack(ok)
        second.send(second.invite())
        busy = await second.expect(486)
        assert busy.call_id == second.call_id
        first.send(first.request("BYE", cseq=2, branch="z9hG4bKbye", to_tag=ok.to_addr.tag))
        await first.expect(200)
        assert await eventually(lambda: agent.active_calls == 0)
        third = Phone(agent.port)
        third.send(third.invite())
        await third.expect(200)  # capacity is back
        for p in (first, second, third):
            p.close()

    run(scenario, idle, max_calls=1)


def test_unacknowledged_200_is_retransmitted_then_the_agent_hangs_up() -> None:
    calls: list[CallInfo] = []

    async def never(call: CallInfo, media: MediaChannel) -> None:
        calls.append(call)

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(phone.invite())
        oks = [await phone.expect(200)]
        while True:  # 64*T1 = 1.28 s of retransmissions, then BYE
            msg = await phone.recv(3)
            if isinstance(msg, SipRequest):
                break
            oks.append(msg)  # type: ignore[arg-type]
        assert msg.method == "BYE" and msg.to_addr.tag == "phone1"
        assert msg.from_addr.tag == oks[0].to_addr.tag and str(msg.uri) == f"sip:5551234@127.0.0.1:{phone.port}"
        assert len(oks) >= 4 and all(o.status == 200 for o in oks)
        phone.sip.sendto(build_response(msg, 200).to_bytes(), phone.agent)
        assert await eventually(lambda: agent.active_calls == 0) and calls == []
        phone.close()

    run(scenario, never, t1=0.02)


def test_handler_return_or_failure_sends_bye() -> None:
    async def failing(call: CallInfo, media: MediaChannel) -> None:
        await media.play(tone(0.1))
        raise RuntimeError("dialog blew up")

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(phone.invite())
        ok = await phone.expect(200)
        phone.ack(ok)
        bye = await phone.recv()
        assert isinstance(bye, SipRequest) and bye.method == "BYE" and bye.call_id == phone.call_id
        phone.sip.sendto(build_response(bye, 200).to_bytes(), phone.agent)
        assert await eventually(lambda: agent.active_calls == 0)
        phone.send(phone.request("OPTIONS", branch="z9hG4bKstill"))
        await phone.expect(200)
        phone.close()

    run(scenario, failing)


def test_rtp_goes_to_the_sdp_address_only_if_it_is_the_sip_source() -> None:
    async def greet(call: CallInfo, media: MediaChannel) -> None:
        await media.play(tone(0.2))
        await media.closed.wait()

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        decoy = udp("127.0.0.2")  # what the SDP names: loopback, but not the SIP source IP
        phone.send(phone.request("INVITE", body=phone.sdp("127.0.0.2", decoy.getsockname()[1])))
        ok = await phone.expect(200)
        phone.ack(ok)
        await asyncio.sleep(0.4)
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(decoy, 2048), 0.2)
        media_port = negotiate_audio(parse_sdp(ok.body)).remote_port
        phone.rtp.sendto(RtpPacket(0, 1, 0, 5, b"\xff" * 160).to_bytes(), ("127.0.0.1", media_port))
        packet = parse_rtp(await asyncio.wait_for(loop.sock_recv(phone.rtp, 2048), 3))  # latched
        assert packet.marker and packet.payload_type == 0
        phone.send(phone.request("BYE", cseq=2, branch="z9hG4bKbye", to_tag=ok.to_addr.tag))
        await phone.expect(200)
        decoy.close()
        phone.close()

    run(scenario, greet)
