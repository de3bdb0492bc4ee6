"""Hostile SIP input against a real SipAgent, meant to run in a loopback-only network namespace.

`python -m tests.peers.sip_hostile_probe` starts a SipAgent on 127.0.0.1 and, from its own
UDP socket, sends garbage, truncated and oversized requests and INVITEs whose Via, Contact,
Record-Route and SDP name foreign hosts. In a namespace with only `lo`, any attempt by the
agent to reach a foreign host fails with ENETUNREACH, which asyncio reports to the agent's
`error_received` (logged) and which the RTP counters expose. The probe only gathers facts
and prints them as one JSON object; tests/integration/test_sip_hostile_netns.py judges them.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import random
import re
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.voice.rtp import RtpEndpoint
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from sync.structured_log import setup_logging

USER = "order"
FOREIGN_IP = "192.0.2.10"  # TEST-NET-1: unroutable inside the namespace
FOREIGN_HOST = "sip.example.com"
HOST = "127.0.0.1"
ANSWER_WAIT_S = 1.0
SILENCE_WAIT_S = 0.3
TONE_FRAMES = 10


@dataclass(frozen=True)
class Case:
    """One datagram to send; `expect` is the distinct statuses it must draw, in order."""

    name: str
    data: bytes
    expect: tuple[int, ...]
    call_id: str | None = None
    parsed: bool = True  # valid SIP: the agent handles it as a request (not a salvaged 400)
    # The answer's top Via must say received=127.0.0.1: true when the agent parses the request
    # and the Via names another host or asks for rport (RFC 3261 18.2.1, RFC 3581).
    marks_received: bool = True


class Inbox(asyncio.DatagramProtocol):
    """Every datagram that reaches one of the probe's sockets, with its source."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, tuple[str, int]]] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.items.append((data, (str(addr[0]), int(addr[1]))))
        self.arrived.set()


# -- message text (written by hand: the probe must not share the agent's parser) -------------

def header(data: bytes, *names: str) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    pattern = rf"^(?:{'|'.join(re.escape(n) for n in names)})[ \t]*:[ \t]*(.*)$"
    m = re.search(pattern, head, re.I | re.M)
    return m.group(1).strip() if m else None


def status_of(data: bytes) -> int | None:
    m = re.match(rb"SIP/2\.0 ([1-6][0-9][0-9]) ", data)
    return int(m.group(1)) if m else None


def call_id_of(data: bytes) -> str | None:
    return header(data, "Call-ID", "i")


def sdp(host: str, port: int) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n").encode()


class Messages:
    """Builds requests addressed to the agent; every request gets a fresh branch."""

    def __init__(self, agent_port: int, probe_port: int) -> None:
        self.agent_port, self.probe_port, self._n = agent_port, probe_port, 0

    def branch(self) -> str:
        self._n += 1
        return f"z9hG4bKhostile{self._n}"

    def request(self, method: str, call_id: str, *, user: str = USER, cseq: int = 1,
                via: str | None = None, to_tag: str | None = None, uri: str | None = None,
                extra: tuple[str, ...] = (), body: bytes = b"", length: int | None = None,
                branch: str | None = None) -> bytes:
        via = via or f"SIP/2.0/UDP {HOST}:{self.probe_port};rport"
        to = f"<sip:{user}@{HOST}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [f"{method} {uri or f'sip:{user}@{HOST}:{self.agent_port}'} SIP/2.0",
                 f"Via: {via};branch={branch or self.branch()}", "Max-Forwards: 70",
                 f"From: <sip:hostile@{HOST}>;tag=probe", f"To: {to}", f"Call-ID: {call_id}",
                 f"CSeq: {cseq} {method}", *extra]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body) if length is None else length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def hostile_cases(m: Messages) -> list[Case]:
    """Unanswerable input first (its silence is measured), then everything that must be answered."""
    invite = m.request("INVITE", "trunc-1", body=sdp(HOST, 4000))
    foreign_contact = f"Contact: <sip:evil@{FOREIGN_IP}:5060>"
    tricky_via = f"SIP/2.0/UDP {FOREIGN_IP}:5060;received={FOREIGN_IP};rport=5060;maddr={FOREIGN_IP}"
    return [
        Case("garbage_bytes", random.Random(7).randbytes(600), (), parsed=False),
        Case("garbage_text", b"HELLO FROM NOWHERE\r\n\r\n", (), parsed=False),
        Case("truncated_before_via", b"INVITE sip:order@127.0.0.1 SIP/2.0\r\nVi", (), parsed=False),
        Case("unsolicited_response", (
            f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {FOREIGN_HOST};branch=z9hG4bKnope\r\n"
            f"From: <sip:a@{FOREIGN_HOST}>;tag=1\r\nTo: <sip:b@{FOREIGN_HOST}>;tag=2\r\n"
            "Call-ID: unsolicited-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").encode(),
            (), "unsolicited-1", parsed=False),
        Case("unparseable_ack", m.request("ACK", "ack-bad-1", length=999), (), "ack-bad-1",
             parsed=False),
        Case("truncated_invite", invite[:invite.index(b"Call-ID") + 12], (400,), parsed=False),
        Case("content_length_too_large", m.request("INVITE", "cl-1", body=sdp(HOST, 4000),
                                                   length=4000), (400,), "cl-1", parsed=False),
        Case("bad_cseq", m.request("OPTIONS", "cseq-1").replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"),
             (400,), "cseq-1", parsed=False),
        Case("nul_in_header", m.request("OPTIONS", "nul-1", extra=("X-Evil: a\x00b",)), (400,),
             "nul-1", parsed=False),
        Case("sip_version_3", m.request("OPTIONS", "ver-1").replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1),
             (505,), "ver-1", parsed=False),
        Case("huge_header", m.request("OPTIONS", "huge-1", extra=("X-Junk: " + "a" * 60_000,)),
             (200,), "huge-1"),
        Case("many_headers", m.request("OPTIONS", "many-1",
                                       extra=tuple(f"X-H{i}: {i}" for i in range(3000))),
             (200,), "many-1"),
        Case("options_foreign_hosts", m.request(
            "OPTIONS", "opt-foreign-1", via=f"SIP/2.0/UDP {FOREIGN_HOST}:5060;rport",
            extra=(f"Contact: <sip:evil@{FOREIGN_HOST}>", f"Route: <sip:{FOREIGN_IP};lr>",
                   f"Record-Route: <sip:{FOREIGN_HOST};lr>")), (200,), "opt-foreign-1"),
        Case("options_ipv6_via", m.request("OPTIONS", "opt-v6-1", via="SIP/2.0/UDP [2001:db8::10]:5060;rport"),
             (200,), "opt-v6-1"),
        Case("options_forged_received", m.request(
            "OPTIONS", "opt-recv-1", via=f"SIP/2.0/UDP {HOST}:5060;received={FOREIGN_IP}"),
            (200,), "opt-recv-1", marks_received=False),  # host is ours, no rport: Via kept as sent
        Case("invite_unknown_user", m.request("INVITE", "unknown-1", user="nobody",
                                              body=sdp(HOST, 4000)), (404,), "unknown-1"),
        Case("invite_unknown_user_rport_tricks", m.request(
            "INVITE", "unknown-2", user="nobody", via=tricky_via, extra=(foreign_contact,),
            body=sdp(FOREIGN_IP, 4000)), (404,), "unknown-2"),
        Case("bye_without_dialog", m.request("BYE", "bye-1", via=f"SIP/2.0/UDP {FOREIGN_HOST};rport",
                                             to_tag="nosuch", extra=(foreign_contact,)), (481,), "bye-1"),
    ]


# -- the run -------------------------------------------------------------------------------

class Probe:
    def __init__(self, agent: SipAgent, sip: asyncio.DatagramTransport, inbox: Inbox,
                 messages: Messages) -> None:
        self.agent, self.sip, self.inbox, self.m = agent, sip, inbox, messages
        self.agent_addr = (HOST, agent.port)

    def send(self, data: bytes) -> None:
        self.sip.sendto(data, self.agent_addr)

    def answers(self, call_id: str | None) -> list[bytes]:
        return [d for d, _ in self.inbox.items if status_of(d) is not None and call_id_of(d) == call_id]

    async def wait_for(self, found: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not found():
            left = deadline - loop.time()
            if left <= 0:
                return False
            self.inbox.arrived.clear()
            try:
                await asyncio.wait_for(self.inbox.arrived.wait(), left)
            except TimeoutError:
                return bool(found())
        return True

    def since(self, before: int, call_id: str | None) -> list[bytes]:
        """Datagrams received after index `before`, only `call_id`'s if one is given."""
        return [d for d, _ in self.inbox.items[before:] if call_id is None or call_id_of(d) == call_id]

    async def run_case(self, case: Case) -> dict[str, Any]:
        before = len(self.inbox.items)
        self.send(case.data)
        if case.expect:
            await self.wait_for(lambda: any((status_of(d) or 0) >= 200
                                            for d in self.since(before, case.call_id)), ANSWER_WAIT_S)
        else:
            await asyncio.sleep(SILENCE_WAIT_S)
        mine = self.since(before, case.call_id)
        finals = [d for d in mine if (status_of(d) or 0) >= 200]
        if case.data.startswith(b"INVITE") and finals and case.parsed:
            self.send(self.ack_for(finals[0], case.data))
        top_via = header(mine[0], "Via", "v") if mine else None
        return {
            "name": case.name, "expect": list(case.expect),
            "statuses": _distinct([status_of(d) for d in mine]),
            "sources": sorted({f"{a[0]}:{a[1]}" for _, a in self.inbox.items[before:]}),
            "top_via": (top_via or "")[:200], "marks_received": case.parsed and case.marks_received,
            "size": len(case.data),
        }

    def ack_for(self, final: bytes, invite: bytes) -> bytes:
        """The ACK of a non-2xx final answer: same branch and Call-ID, the answer's To tag."""
        call_id = call_id_of(final) or ""
        branch = re.search(r"branch=([^;,\s]+)", header(invite, "Via") or "")
        tag = re.search(r"tag=([^;>\s]+)", header(final, "To") or "")
        via = (header(invite, "Via") or "").split(";branch=")[0]
        user = re.search(r"^INVITE sip:([^@]+)@", invite.decode(errors="replace"))
        return self.m.request("ACK", call_id, user=user.group(1) if user else USER, via=via,
                              to_tag=tag.group(1) if tag else None,
                              branch=branch.group(1) if branch else None)

    async def foreign_call(self, rtp: asyncio.DatagramTransport, rtp_inbox: Inbox,
                           handler_seen: dict[str, Any]) -> dict[str, Any]:
        """A whole call whose INVITE names foreign hosts everywhere; all of it must come to us."""
        call_id = "foreign-call-1"
        rtp_port = int(rtp.get_extra_info("sockname")[1])
        via = f"SIP/2.0/UDP {FOREIGN_HOST}:5060;rport"
        invite = self.m.request(
            "INVITE", call_id, via=via + f";received={FOREIGN_IP}",
            extra=(f"Via: SIP/2.0/UDP {FOREIGN_IP}:5060;branch=z9hG4bKupstream",
                   f"Contact: <sip:evil@{FOREIGN_HOST}:5060>", f"Record-Route: <sip:{FOREIGN_IP};lr>"),
            body=sdp(FOREIGN_IP, 4000))
        self.send(invite)
        ok = await self.wait_for(lambda: any(status_of(d) == 200 for d in self.answers(call_id)),
                                 ANSWER_WAIT_S * 3)
        result: dict[str, Any] = {"statuses": _distinct([status_of(d) for d in self.answers(call_id)])}
        if not ok:
            return result
        answer = next(d for d in self.answers(call_id) if status_of(d) == 200)
        body = answer.split(b"\r\n\r\n", 1)[1].decode(errors="replace")
        media_port = int(re.search(r"^m=audio (\d+)", body, re.M).group(1))  # type: ignore[union-attr]
        connection = re.search(r"^c=IN IP4 (\S+)", body, re.M)
        result["answer_connection"] = connection.group(1) if connection else None
        result["ok_top_via"] = header(answer, "Via", "v")
        tag = re.search(r"tag=([^;>\s]+)", header(answer, "To") or "")
        self.send(self.m.request("ACK", call_id, via=via, to_tag=tag.group(1) if tag else None,
                                 uri=f"sip:{USER}@{HOST}:{self.agent.port}"))
        for seq in range(TONE_FRAMES):  # our RTP, from our own RTP socket, latches the agent
            rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xB0B) + b"\xff" * 160,
                       (HOST, media_port))
            await asyncio.sleep(0.02)

        def bye() -> bytes | None:
            return next((d for d, _ in self.inbox.items if d.startswith(b"BYE ")
                         and call_id_of(d) == call_id), None)

        await self.wait_for(lambda: bye() is not None, 5.0)
        request = bye()
        result["bye_received"] = request is not None
        if request is not None:
            self.send(_ok_for(request))
            await asyncio.sleep(0.2)  # the agent ends the call on our 200
        result["rtp_sources"] = sorted({f"{a[0]}:{a[1]}" for _, a in rtp_inbox.items})
        result["rtp_packets_received"] = len(rtp_inbox.items)
        result["probe_rtp"] = f"{HOST}:{rtp_port}"
        result["handler"] = handler_seen
        result["active_calls_after"] = self.agent.active_calls
        return result


def _ok_for(request: bytes) -> bytes:
    head = request.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    keep = [line for line in head[1:] if re.match(r"(Via|From|To|Call-ID|CSeq)\s*:", line, re.I)]
    return ("\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0"]) + "\r\n\r\n").encode()


def _distinct(statuses: list[int | None]) -> list[int | None]:
    out: list[int | None] = []
    for s in statuses:
        if not out or out[-1] != s:
            out.append(s)
    return out


def foreign_send_errno() -> int:
    """What a send to the foreign address gets here: ENETUNREACH proves there is no route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"canary", (FOREIGN_IP, 5060))
        except OSError as err:
            return err.errno or -1
    return 0


def tone() -> np.ndarray:
    t = np.arange(TONE_FRAMES * 160) / 8000
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


async def run() -> dict[str, Any]:
    logs = io.StringIO()
    setup_logging("hostile-probe", "DEBUG", logs)
    handler_seen: dict[str, Any] = {}

    async def handler(info: CallInfo, media: MediaChannel) -> None:
        handler_seen["remote"] = f"{info.remote[0]}:{info.remote[1]}"
        frames = media.frames()
        try:
            await asyncio.wait_for(anext(frames), 3.0)  # RTP arrived: the agent has latched
        except TimeoutError:
            handler_seen["no_rtp"] = True
        await media.play(tone())
        if isinstance(media, RtpEndpoint):
            dest = media.peer.destination
            handler_seen["rtp_destination"] = f"{dest[0]}:{dest[1]}" if dest else None
            handler_seen["packets_out"] = media.stats.packets_out
            handler_seen["foreign_rtp_dropped"] = media.stats.foreign

    agent = SipAgent(HOST, 0, [USER], handler, rtp_host=HOST, t1=0.05, t2=0.4, stop_grace_s=1.0)
    await agent.start()
    loop = asyncio.get_running_loop()
    inbox, rtp_inbox = Inbox(), Inbox()
    sip, _ = await loop.create_datagram_endpoint(lambda: inbox, local_addr=(HOST, 0))
    rtp, _ = await loop.create_datagram_endpoint(lambda: rtp_inbox, local_addr=(HOST, 0))
    probe_port, agent_port = int(sip.get_extra_info("sockname")[1]), agent.port
    probe = Probe(agent, sip, inbox, Messages(agent.port, probe_port))
    try:
        cases = [await probe.run_case(c) for c in hostile_cases(probe.m)]
        call = await probe.foreign_call(rtp, rtp_inbox, handler_seen)
        final = await probe.run_case(Case("options_after_all", probe.m.request("OPTIONS", "final-1"),
                                          (200,), "final-1"))
        await asyncio.sleep(SILENCE_WAIT_S)  # late retransmissions, if any, land in `sources`
    finally:
        await agent.stop()
        sip.close()
        rtp.close()
    records = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    return {
        "agent": f"{HOST}:{agent_port}", "probe": f"{HOST}:{probe_port}",
        "cases": cases, "call": call, "final": final,
        "all_sources": sorted({f"{a[0]}:{a[1]}" for _, a in inbox.items}),
        "foreign_send_errno": foreign_send_errno(), "enetunreach": errno.ENETUNREACH,
        "log_errors": [r for r in records if r.get("level") in ("error", "critical")],
        "log_socket_errors": [r for r in records if r.get("msg") == "SIP socket error"
                              or "unreachable" in json.dumps(r).lower()],
        "log_messages": sorted({str(r.get("msg")) for r in records}),
    }


def main() -> int:
    summary = asyncio.run(run())
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
