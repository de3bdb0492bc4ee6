"""SIP over TCP against a real SipAgent on loopback: a whole call on one connection,
connection reuse, keep-alives, and stream framing errors that must never hang the agent.
"""

from __future__ import annotations

import asyncio
import secrets

from appliance.voice.sip_agent import SipAgent
from appliance.voice.sip_message import SipRequest, SipResponse, build_response, parse_message
from appliance.voice.sip_tcp import StreamFramer
from tests.integration.sip_phone import eventually, idle, run, udp
from voxeron.ports import sip_options_ok


class TcpPhone:
    """A hand-written SIP phone on one TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port = writer.get_extra_info("sockname")[1]
        self.framer = StreamFramer()
        self.pending: list[bytes] = []
        self.call_id = secrets.token_hex(8) + "@127.0.0.1"

    @classmethod
    async def connect(cls, port: int) -> TcpPhone:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def request(self, method: str, *, cseq: int = 1, to_tag: str | None = None, body: bytes = b"",
                branch: str | None = None) -> bytes:
        to = "<sip:order@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        head = (f"{method} sip:order@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP 127.0.0.1:{self.port};branch={branch or 'z9hG4bK' + secrets.token_hex(6)}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:5551234@127.0.0.1>;tag=tcp1\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:5551234@127.0.0.1:{self.port};transport=tcp>\r\n")
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv(self, timeout: float = 3.0) -> SipRequest | SipResponse:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            assert data, "the agent closed the connection"
            for item in self.framer.feed(data):
                assert isinstance(item, bytes)
                if item:
                    self.pending.append(item)
        return parse_message(self.pending.pop(0))

    async def expect(self, status: int) -> SipResponse:
        while True:
            msg = await self.recv()
            if isinstance(msg, SipResponse) and msg.status == status:
                return msg
            assert isinstance(msg, SipResponse) and msg.status < 200, f"unexpected {msg}"

    async def closed_by_agent(self) -> bytes:
        """Everything left on the connection until the agent closes it."""
        return await asyncio.wait_for(self.reader.read(), 3.0)

    def close(self) -> None:
        self.writer.close()


def offer(rtp_port: int) -> bytes:
    return (f"v=0\r\no=tcp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0\r\na=sendrecv\r\n").encode()


async def agent_hangs_up(call: object, media: object) -> None:
    await asyncio.sleep(0.3)


def test_a_call_over_tcp_uses_one_connection_both_ways() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = await TcpPhone.connect(agent.port)
        rtp = udp()
        phone.send(phone.request("OPTIONS"))
        ok = await phone.expect(200)
        assert ok.vias[0].transport == "TCP" and ok.vias[0].port == phone.port
        phone.send(phone.request("INVITE", body=offer(rtp.getsockname()[1])))
        answer = await phone.expect(200)
        assert answer.headers.get("Contact").endswith(";transport=tcp>")
        phone.send(phone.request("ACK", to_tag=answer.to_addr.tag))
        bye = await phone.recv()  # the handler returned: the BYE comes on our connection
        assert isinstance(bye, SipRequest) and bye.method == "BYE"
        assert bye.vias[0].transport == "TCP" and bye.from_addr.tag == answer.to_addr.tag
        phone.send(build_response(bye, 200).to_bytes())
        assert await eventually(lambda: agent.active_calls == 0)
        assert agent.tcp is not None and agent.tcp.connections == 1  # reused, not reopened
        phone.send(b"\r\n\r\n")  # RFC 5626 keep-alive ping gets a pong
        assert await asyncio.wait_for(phone.reader.readexactly(2), 3) == b"\r\n"
        phone.send(phone.request("FOOBAR"))
        await phone.expect(501)
        assert await asyncio.to_thread(sip_options_ok, agent.port, 3.0), "UDP still serves"
        phone.close()
        rtp.close()

    run(scenario, agent_hangs_up, t1=0.05, tcp=True)


def test_tcp_framing_errors_get_400_and_close_without_stopping_the_agent() -> None:
    async def scenario(agent: SipAgent) -> None:
        cases = {
            "no content-length": lambda p: p.request("OPTIONS").replace(b"Content-Length: 0\r\n", b""),
            "bad content-length": lambda p: p.request("OPTIONS").replace(b"Content-Length: 0", b"Content-Length: x1"),
            "two content-lengths": lambda p: p.request("OPTIONS").replace(
                b"Content-Length: 0", b"Content-Length: 0\r\nContent-Length: 5"),
            "oversized body": lambda p: p.request("OPTIONS").replace(b"Content-Length: 0", b"Content-Length: 9999999"),
        }
        for name, build in cases.items():
            phone = await TcpPhone.connect(agent.port)
            phone.send(build(phone))
            rest = await phone.closed_by_agent()
            assert rest.startswith(b"SIP/2.0 400 "), (name, rest[:80])
            assert b"Content-Length" in rest, name
        huge = await TcpPhone.connect(agent.port)  # a header section that never ends
        huge.send(b"OPTIONS sip:order@127.0.0.1 SIP/2.0\r\nX: " + b"a" * 70_000)
        assert await huge.closed_by_agent() == b""  # nothing to address a 400 to
        short = await TcpPhone.connect(agent.port)  # a body that never comes: the agent moves on
        short.send(short.request("OPTIONS").replace(b"Content-Length: 0", b"Content-Length: 10"))
        assert await short.closed_by_agent() == b""
        phone = await TcpPhone.connect(agent.port)
        phone.send(phone.request("OPTIONS") + phone.request("OPTIONS"))  # pipelined
        assert (await phone.expect(200)).cseq.method == "OPTIONS"
        await phone.expect(200)
        phone.close()
        assert await asyncio.to_thread(sip_options_ok, agent.port, 3.0)

    async def wrapped(agent: SipAgent) -> None:
        assert agent.tcp is not None
        agent.tcp.partial_s = 0.5  # how long half a message may sit before the connection closes
        await scenario(agent)

    run(wrapped, idle, t1=0.05, tcp=True)
