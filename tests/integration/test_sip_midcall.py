"""Mid-call SIP on real loopback UDP: hold/resume, media moves, UPDATE, session timers,
DTMF (RFC 4733 and SIP INFO) and the busy/overflow answer, against a real SipAgent.
"""

from __future__ import annotations

import asyncio
import socket

from appliance.voice.dtmf import ToneEvent
from appliance.voice.g711 import ulaw_encode
from appliance.voice.rtp import RtpPacket
from appliance.voice.sdp import negotiate_audio, parse_sdp
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.sip_message import SipRequest, SipResponse, build_response
from appliance.voice.sip_refer import staff_uri
from tests.integration.sip_phone import Phone, eventually, idle, run, tone, udp


def sdp(port: int, direction: str = "sendrecv", host: str = "127.0.0.1", version: int = 1) -> bytes:
    return (f"v=0\r\no=phone 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            f"a=ptime:20\r\na={direction}\r\n").encode()


def with_headers(request: bytes, *headers: str) -> bytes:
    head, sep, body = request.partition(b"\r\n\r\n")
    return head + b"".join(b"\r\n" + h.encode() for h in headers) + sep + body


async def call_up(phone: Phone, *headers: str) -> SipResponse:
    phone.send(with_headers(phone.request("INVITE", body=sdp(phone.rtp_port)), *headers))
    ok = await phone.expect(200)
    phone.ack(ok)
    return ok


def ack(phone: Phone, ok: SipResponse, answer: SipResponse) -> None:
    """The ACK of a re-INVITE's 200: new branch, the re-INVITE's CSeq number."""
    phone.send(phone.request("ACK", cseq=answer.cseq.number, branch=f"z9hG4bKack{answer.cseq.number}",
                             to_tag=ok.to_addr.tag))


def reinvite(phone: Phone, ok: SipResponse, cseq: int, body: bytes, *headers: str) -> bytes:
    return with_headers(phone.request("INVITE", cseq=cseq, branch=f"z9hG4bKre{cseq}",
                                      to_tag=ok.to_addr.tag, body=body), *headers)


async def rtp_arrivals(sock: socket.socket, seconds: float) -> int:
    """How many RTP packets reach `sock` within `seconds`."""
    loop, count = asyncio.get_running_loop(), 0
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            await asyncio.wait_for(loop.sock_recv(sock, 2048), left)
            count += 1
        except TimeoutError:
            break
    return count


PLAYED: list[int] = []


async def talk_forever(call: CallInfo, media: MediaChannel) -> None:
    while not media.closed.is_set():
        await media.play(tone(0.2))
        PLAYED.append(1)


def test_reinvite_hold_stops_our_audio_and_resume_restarts_it_at_the_new_address() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        ok = await call_up(phone)
        assert await rtp_arrivals(phone.rtp, 0.3) > 5  # the agent talks

        phone.send(reinvite(phone, ok, 2, sdp(phone.rtp_port, "sendonly", version=2)))
        held = await phone.expect(200)
        ack(phone, ok, held)
        plan = negotiate_audio(parse_sdp(held.body))
        assert plan.direction == "recvonly" and b"o=voxeron" in held.body
        await rtp_arrivals(phone.rtp, 0.1)  # what was in flight
        plays = len(PLAYED)
        assert await rtp_arrivals(phone.rtp, 0.4) == 0, "on hold the agent must send nothing"
        assert len(PLAYED) == plays, "a prompt pauses on hold instead of running on unheard"
        assert agent.active_calls == 1, "hold is not a hang-up"
        assert await phone.quiet(0.3) == [], "the ACK stopped the re-INVITE 200 retransmissions"

        phone.send(reinvite(phone, ok, 3, sdp(phone.rtp_port, "sendrecv", host="0.0.0.0", version=3)))
        legacy = await phone.expect(200)  # RFC 2543 hold: c=0.0.0.0
        ack(phone, ok, legacy)
        assert negotiate_audio(parse_sdp(legacy.body)).direction == "recvonly"

        moved = udp()  # resume, with our media on a new port
        phone.send(reinvite(phone, ok, 4, sdp(moved.getsockname()[1], "sendrecv", version=4)))
        resumed = await phone.expect(200)
        ack(phone, ok, resumed)
        assert negotiate_audio(parse_sdp(resumed.body)).direction == "sendrecv"
        assert await rtp_arrivals(moved, 0.4) > 5, "after resume RTP goes to the new port"
        versions = [r.body.split(b"o=voxeron ")[1].split()[1] for r in (ok, held, resumed)]
        assert len(set(versions)) == 3, "a changed answer carries a new o= version"

        phone.send(reinvite(phone, ok, 5, b"v=0\r\nbogus\r\n"))
        await phone.expect(488)  # refused; the call goes on with the media it had
        assert agent.active_calls == 1
        moved.close()
        phone.close()

    run(scenario, talk_forever, t1=0.05)


def test_update_refreshes_the_session_and_an_unrefreshed_one_is_ended_with_bye() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        phone.send(with_headers(phone.request("INVITE", body=sdp(phone.rtp_port)),
                                "Supported: timer", "Session-Expires: 1"))
        small = await phone.expect(422)
        assert small.headers.get("Min-SE") == "2"
        phone.send(phone.request("ACK", to_tag=small.to_addr.tag))

        phone2 = Phone(agent.port)
        ok = await call_up(phone2, "Supported: timer", "Session-Expires: 3;refresher=uac")
        assert ok.headers.get("Session-Expires") == "3;refresher=uac"
        assert "timer" in ok.headers.values("Require") and "timer" in ok.headers.values("Supported")
        for cseq in (2, 3, 4):  # refresh every second: expect(200) fails if a BYE comes first
            await asyncio.sleep(1.0)
            phone2.send(with_headers(phone2.request("UPDATE", cseq=cseq, branch=f"z9hG4bKup{cseq}",
                                                    to_tag=ok.to_addr.tag),
                                     "Supported: timer", "Session-Expires: 3;refresher=uac"))
            assert (await phone2.expect(200)).headers.get("Session-Expires") == "3;refresher=uac"
        bye = await phone2.recv(6.0)  # no more refreshes: BYE at 3 - min(32, 3/3) = 2 s
        assert isinstance(bye, SipRequest) and bye.method == "BYE"
        phone2.send(build_response(bye, 200).to_bytes())
        assert await eventually(lambda: agent.active_calls == 0)
        phone.close()
        phone2.close()

    run(scenario, idle, t1=0.05, min_se=2)


def test_caller_without_timer_support_gets_us_as_refresher() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        ok = await call_up(phone, "Session-Expires: 2")  # inserted by a proxy; the phone can't refresh
        assert ok.headers.get("Session-Expires") == "2;refresher=uas"
        assert "timer" not in ok.headers.values("Require")
        update = await phone.recv(3.0)  # we refresh at half the interval
        assert isinstance(update, SipRequest) and update.method == "UPDATE"
        assert update.headers.get("Session-Expires") == "2;refresher=uas"
        phone.send(build_response(update, 200).to_bytes())
        assert agent.active_calls == 1
        phone.close()

    run(scenario, idle, t1=0.05, min_se=2)


def test_dtmf_from_rtp_events_and_sip_info_reaches_the_handler_once_per_press() -> None:
    digits: list[str] = []

    async def keypad(call: CallInfo, media: MediaChannel) -> None:
        media.on_dtmf(digits.append)
        await media.closed.wait()

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        ok = await call_up(phone)
        media = ("127.0.0.1", negotiate_audio(parse_sdp(ok.body)).remote_port)
        seq = 0
        for ts, key in ((8000, 5), (16000, 0)):  # each press: 3 updates, then the end x3
            for i, (end, dur) in enumerate([(False, 160), (False, 320), (False, 480),
                                            (True, 640), (True, 640), (True, 640)]):
                packet = RtpPacket(101, seq, ts, 0xD7, ToneEvent(key, end, 10, dur).to_bytes(), i == 0)
                phone.rtp.sendto(packet.to_bytes(), media)
                seq += 1
        voice = RtpPacket(0, seq, 24000, 0xD7, ulaw_encode(tone(0.02)))
        phone.rtp.sendto(voice.to_bytes(), media)
        assert await eventually(lambda: len(digits) >= 2)
        info = phone.request("INFO", cseq=2, branch="z9hG4bKinfo", to_tag=ok.to_addr.tag)
        body = b"Signal=#\r\nDuration=160\r\n"
        info = info.replace(b"Content-Length: 0", b"Content-Type: application/dtmf-relay\r\n"
                            + f"Content-Length: {len(body)}".encode()) + body
        phone.send(info)
        await phone.expect(200)
        assert await eventually(lambda: len(digits) >= 3)
        await asyncio.sleep(0.1)
        assert digits == ["5", "0", "#"]
        odd = phone.request("INFO", cseq=3, branch="z9hG4bKinfo2", to_tag=ok.to_addr.tag)
        odd = odd.replace(b"Content-Length: 0", b"Content-Type: application/x-unknown\r\nContent-Length: 2") + b"hi"
        phone.send(odd)
        assert (await phone.expect(415)).headers.get("Accept")
        phone.close()

    run(scenario, keypad, t1=0.05)


def test_past_max_calls_a_caller_is_sent_to_the_staff_line_or_told_busy() -> None:
    async def scenario(agent: SipAgent) -> None:
        first = Phone(agent.port)
        await call_up(first)
        second = Phone(agent.port)
        second.send(second.invite())
        moved = await second.expect(302)
        assert moved.headers.get("Contact") == "<sip:staff@127.0.0.1:5099>"
        agent.overflow_uri = None
        third = Phone(agent.port)
        third.send(third.invite())
        await third.expect(486)
        for phone in (first, second, third):
            phone.close()

    run(scenario, idle, t1=0.05, max_calls=1, overflow_uri=staff_uri("sip:staff@127.0.0.1:5099"))


def test_rtp_packets_after_hold_do_not_reach_the_handler() -> None:
    frames: list[int] = []

    async def count(call: CallInfo, media: MediaChannel) -> None:
        async for _ in media.frames():
            frames.append(1)

    async def scenario(agent: SipAgent) -> None:
        phone = Phone(agent.port)
        ok = await call_up(phone)
        media = ("127.0.0.1", negotiate_audio(parse_sdp(ok.body)).remote_port)
        phone.send(reinvite(phone, ok, 2, sdp(phone.rtp_port, "sendonly", version=2)))
        ack(phone, ok, await phone.expect(200))
        for i in range(20):  # music on hold
            phone.rtp.sendto(RtpPacket(0, i, i * 160, 0x77, ulaw_encode(tone(0.02))).to_bytes(), media)
        await asyncio.sleep(0.3)
        assert frames == [], "music on hold must not become caller speech"
        phone.send(reinvite(phone, ok, 3, sdp(phone.rtp_port, "sendrecv", version=3)))
        ack(phone, ok, await phone.expect(200))
        for i in range(20, 40):
            phone.rtp.sendto(RtpPacket(0, i, i * 160, 0x77, ulaw_encode(tone(0.02))).to_bytes(), media)
        assert await eventually(lambda: len(frames) > 10)
        phone.close()

    run(scenario, count, t1=0.05)
