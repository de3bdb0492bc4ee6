"""Sends every RFC 4475 torture message in this folder to a real SipAgent, over UDP and TCP.

Meant to run in a loopback-only network namespace (tests/integration/test_sip_torture.py):
the messages name hosts such as example.com and 192.0.2.x, and any attempt of the agent to
reach one fails there. For each message it records the statuses that came back (per
transport), then checks that the agent still answers OPTIONS on both transports, and
prints one JSON object. It reads responses with regexes, not with the agent's parser.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from sync.structured_log import setup_logging

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
WAIT_S = 0.4  # for an answer; messages that get none cost this much
SETTLE_S = 0.05  # after an answer, for anything else the same message draws
_STATUS = re.compile(rb"SIP/2\.0 ([1-6][0-9][0-9]) ")


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.items: list[tuple[bytes, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.items.append((data, (str(addr[0]), int(addr[1]))))


_TOP_VIA = re.compile(rb"^(?:Via|v)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_BRANCH = re.compile(rb"branch[ \t]*=[ \t]*([^;, \t\r\n]+)", re.I)


def transaction(data: bytes) -> tuple[bytes, bytes] | None:
    """(sent-by host, branch) of the top Via: what the agent matches a request's answer by."""
    head = re.sub(rb"\r?\n[ \t]+", b" ", data.split(b"\r\n\r\n", 1)[0])  # unfold
    m = _TOP_VIA.search(head)
    if m is None:
        return None
    sent_by = re.match(rb"\s*SIP\s*/\s*[0-9.]+\s*/\s*\w+\s+([^;,\s]+)", m.group(1))
    branch = _BRANCH.search(m.group(1))
    return sent_by.group(1) if sent_by else b"", branch.group(1) if branch else b""


def statuses(chunks: list[bytes], sent: bytes | None = None) -> list[int]:
    """Distinct statuses in arrival order (retransmissions collapse); with `sent`, only the
    answers to its transaction (late retransmissions to earlier messages are left out; a
    message the agent takes for a retransmission gets the earlier answer, as it should)."""
    wanted = transaction(sent) if sent is not None else None
    out: list[int] = []
    for chunk in chunks:
        if wanted is not None and transaction(chunk) != wanted:
            continue
        for m in _STATUS.finditer(chunk):
            if int(m.group(1)) not in out:
                out.append(int(m.group(1)))
    return out


async def over_udp(transport: asyncio.DatagramTransport, inbox: Inbox, data: bytes,
                   port: int) -> list[bytes]:
    start = len(inbox.items)
    transport.sendto(data, (HOST, port))
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT_S
    while loop.time() < end and not statuses([d for d, _ in inbox.items[start:]], data):
        await asyncio.sleep(0.01)
    await asyncio.sleep(SETTLE_S)  # a second status to the same message, if any
    return [d for d, _ in inbox.items[start:]]


async def over_tcp(data: bytes, port: int, wait_s: float = WAIT_S) -> tuple[list[bytes], bool]:
    """What the agent sends back on a fresh connection, and whether it closed it."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(data)
    got: list[bytes] = []
    closed = False
    try:
        while True:
            # after a 400 the agent may be closing the stream: give that time to show
            settle = 0.3 if 400 in statuses(got) else SETTLE_S
            chunk = await asyncio.wait_for(reader.read(65536), settle if got else wait_s)
            if not chunk:
                closed = True
                break
            got.append(chunk)
    except TimeoutError:
        pass
    finally:
        writer.close()
    return got, closed


def options(port: int, branch: str) -> bytes:
    return (f"OPTIONS sip:order@{HOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {HOST}:9;branch=z9hG4bK{branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:probe@{HOST}>;tag=t\r\nTo: <sip:order@{HOST}>\r\n"
            f"Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


async def run() -> dict[str, Any]:
    logs = io.StringIO()
    setup_logging("torture-probe", "INFO", logs)

    async def idle(info: CallInfo, media: MediaChannel) -> None:
        await media.closed.wait()

    agent = SipAgent(HOST, 0, ["order"], idle, rtp_host=HOST, t1=0.05, t2=0.4, tcp=True,
                     stop_grace_s=0.5)
    await agent.start()
    address = f"{HOST}:{agent.port}"
    assert agent.tcp is not None
    agent.tcp.partial_s = 0.5
    loop = asyncio.get_running_loop()
    inbox = Inbox()
    sock, _ = await loop.create_datagram_endpoint(lambda: inbox, local_addr=(HOST, 0))
    udp: dict[str, list[int]] = {}
    tcp: dict[str, dict[str, Any]] = {}
    try:
        for path in sorted(HERE.glob("*.sip")):
            data = path.read_bytes()
            udp[path.stem] = statuses(await over_udp(sock, inbox, data, agent.port), data)
            got, closed = await over_tcp(data, agent.port)
            tcp[path.stem] = {"statuses": statuses(got), "closed": closed}
        big = options(agent.port, "big").replace(b"Content-Length", b"X-Big: " + b"a" * 64_000 + b"\r\nContent-Length")
        extra = {"oversized_datagram": statuses(await over_udp(sock, inbox, big, agent.port), big)}
        got, closed = await over_tcp(b"OPTIONS sip:order@x SIP/2.0\r\nX: " + b"a" * 70_000, agent.port, 1.5)
        extra["tcp_endless_header"] = {"statuses": statuses(got), "closed": closed}
        final = options(agent.port, "final")
        final_udp = statuses(await over_udp(sock, inbox, final, agent.port), final)
        got, _ = await over_tcp(options(agent.port, "finaltcp"), agent.port)
        final_tcp = statuses(got)
        active = agent.active_calls
    finally:
        await agent.stop()
        sock.close()
    records = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    return {"udp": udp, "tcp": tcp, "extra": extra, "final_udp": final_udp, "final_tcp": final_tcp,
            "active_calls": active,
            "sources": sorted({f"{a[0]}:{a[1]}" for _, a in inbox.items}), "agent": address,
            "log_errors": [r for r in records if r.get("level") in ("error", "critical")]}


def main() -> int:
    sys.stdout.write(json.dumps(asyncio.run(run())) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
