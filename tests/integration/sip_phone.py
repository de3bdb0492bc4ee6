"""A hand-written SIP phone on real loopback UDP sockets, and an agent runner, for tests."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Awaitable, Callable

import numpy as np

from appliance.voice.g711 import codec_for
from appliance.voice.rtp import RtpEndpoint, RtpPeer
from appliance.voice.sdp import negotiate_audio, parse_sdp
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.sip_message import SipRequest, SipResponse, parse_message

Handler = Callable[[CallInfo, MediaChannel], Awaitable[None]]


def tone(seconds: float, hz: float = 440.0, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * hz * t) * level).astype(np.int16)


def udp(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


class Phone:
    """A hand-written SIP phone on its own UDP socket, plus an RTP socket."""

    def __init__(self, agent_port: int) -> None:
        self.sip, self.rtp = udp(), udp()
        self.agent = ("127.0.0.1", agent_port)
        self.port = self.sip.getsockname()[1]
        self.rtp_port = self.rtp.getsockname()[1]
        self.call_id = secrets.token_hex(8) + "@127.0.0.1"
        self.branch = "z9hG4bK" + secrets.token_hex(6)

    def request(self, method: str, user: str = "order", *, cseq: int = 1, branch: str | None = None,
                to_tag: str | None = None, body: bytes = b"", via: str | None = None,
                call_id: str | None = None) -> bytes:
        via = via or f"127.0.0.1:{self.port};rport"
        to = f"<sip:{user}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        head = (f"{method} sip:{user}@127.0.0.1:{self.agent[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {via};branch={branch or self.branch}\r\nMax-Forwards: 70\r\n"
                f'From: "Test Phone" <sip:5551234@127.0.0.1>;tag=phone1\r\nTo: {to}\r\n'
                f"Call-ID: {call_id or self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:5551234@127.0.0.1:{self.port}>\r\n")
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def sdp(self, host: str = "127.0.0.1", port: int | None = None, formats: str = "0 8 101") -> bytes:
        return ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
                f"c=IN IP4 {host}\r\nt=0 0\r\nm=audio {port or self.rtp_port} RTP/AVP {formats}\r\n"
                "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n").encode()

    def invite(self, **kw: object) -> bytes:
        return self.request("INVITE", body=self.sdp(), **kw)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        self.sip.sendto(data, self.agent)

    async def recv(self, timeout: float = 3.0) -> SipRequest | SipResponse:
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sip, 65535), timeout)
        return parse_message(data)

    async def expect(self, status: int, timeout: float = 3.0) -> SipResponse:
        """The next response with `status`, skipping provisional ones."""
        while True:
            msg = await self.recv(timeout)
            if isinstance(msg, SipResponse) and msg.status == status:
                return msg
            assert isinstance(msg, SipResponse) and msg.status < 200, f"unexpected {msg}"

    async def quiet(self, seconds: float) -> list[SipRequest | SipResponse]:
        """Everything that arrives within `seconds` (usually asserted to be nothing)."""
        got: list[SipRequest | SipResponse] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                got.append(await self.recv(left))
            except TimeoutError:
                break
        return got

    def ack(self, ok: SipResponse) -> None:
        self.send(self.request("ACK", branch="z9hG4bK" + secrets.token_hex(6), to_tag=ok.to_addr.tag))

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()


async def answered_call(agent_port: int) -> tuple[Phone, RtpEndpoint, SipResponse]:
    """Call the agent with a PCMU offer from a real RTP endpoint; returns once the call is up
    (200 acknowledged) and our RTP is aimed at the agent's answer."""
    phone = Phone(agent_port)
    ours = await RtpEndpoint.open("127.0.0.1", codec_for("PCMU", 0), RtpPeer(None, 0, "127.0.0.1"),
                                  comfort_silence=True)
    phone.send(phone.request("INVITE", body=phone.sdp(port=ours.local_port)))
    ok = await phone.expect(200)
    phone.ack(ok)
    plan = negotiate_audio(parse_sdp(ok.body))
    ours.set_peer(RtpPeer(plan.remote_address, plan.remote_port, "127.0.0.1"))
    return phone, ours, ok


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll `condition` until it holds (state that settles when the peer's reply is processed)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition() and loop.time() < end:
        await asyncio.sleep(0.01)
    return condition()


def run(scenario: Callable[[SipAgent], Awaitable[None]], handler: Handler, *, timeout: float = 30,
        **options: object) -> None:
    async def main() -> None:
        agent = SipAgent("127.0.0.1", 0, ["order"], handler, rtp_host="127.0.0.1", **options)  # type: ignore[arg-type]
        await agent.start()
        try:
            await scenario(agent)
        finally:
            await agent.stop()

    asyncio.run(asyncio.wait_for(main(), timeout))


async def idle(call: CallInfo, media: MediaChannel) -> None:
    """A handler that just stays on the line until the call ends."""
    await media.closed.wait()
