"""The box registers at a registrar that demands digest auth, refreshes, and unregisters on stop.

MD5 is checked by sipp (an independent implementation: its <verifyauth> recomputes our
response); SHA-256, which sipp 3.6.1 cannot verify, by our own DigestServer acting as registrar.
Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from appliance.voice.sip_agent import SipAgent
from appliance.voice.sip_auth import DigestServer, Verdict, parse_credentials
from appliance.voice.sip_message import SipRequest, build_response, parse_message
from appliance.voice.sip_register import RegisterClient, RegisterSettings, Registration, RegState
from tests.integration.sip_phone import eventually, idle
from voxeron.ports import free_port

SCENARIO = Path(__file__).resolve().parents[1] / "peers" / "uas_register_digest.xml"


def sipp() -> str:
    path = shutil.which("sipp")
    assert path, "sipp (Debian package sip-tester) must be installed by `make test`"
    return path


def settings(agent: SipAgent, registrar: tuple[str, int], password: str, **kw: object) -> RegisterSettings:
    return RegisterSettings(registrar=registrar, domain="127.0.0.1", user="voxeron",
                            contact=("127.0.0.1", agent.port), auth_user="box1", password=password,
                            t1=0.1, t2=0.4, backoff_s=0.2, **kw)  # type: ignore[arg-type]


async def with_agent(body: Callable[[SipAgent], Awaitable[None]]) -> None:
    agent = SipAgent("127.0.0.1", 0, ["order"], idle, rtp_host="127.0.0.1", t1=0.1)
    await agent.start()
    try:
        await body(agent)
    finally:
        await agent.stop()


async def run_sipp_registrar(tmp_path: Path, password: str) -> tuple[int, str, list[RegState]]:
    port = free_port(socket.SOCK_DGRAM)
    script = tmp_path / "registrar.xml"
    script.write_text(SCENARIO.read_text().replace("@USER@", "box1")
                      .replace("@PASSWORD@", "s3cret-pass").replace("@EXPIRES@", "2"))
    proc = await asyncio.create_subprocess_exec(
        sipp(), "-sf", str(script), "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin",
        "-timeout", "20s", "-trace_err", "-error_file", str(tmp_path / "err.log"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=tmp_path)
    seen: list[RegState] = []

    async def body(agent: SipAgent) -> None:
        await asyncio.sleep(0.5)  # sipp binds its port
        client = RegisterClient(agent, settings(agent, ("127.0.0.1", port), password, expires_s=60))
        client.start()
        assert client.machine is not None
        machine = client.machine
        await eventually(lambda: machine.state is RegState.REGISTERED, 5)
        seen.append(machine.state)
        first_until = machine.registered_until
        # granted 2 s: the refresh goes out at 1.6 s and extends the binding
        await eventually(lambda: machine.registered_until != first_until
                         and machine.state is RegState.REGISTERED, 5)
        seen.append(machine.state)
        await client.stop()
        seen.append(machine.state)

    await with_agent(body)
    rc = await asyncio.wait_for(proc.wait(), 25)
    errors = (tmp_path / "err.log").read_text(errors="replace") if (tmp_path / "err.log").exists() else ""
    return rc, errors, seen


@pytest.mark.sip_peer
def test_sipp_registrar_verifies_our_md5_digest_refresh_and_unregister(tmp_path: Path) -> None:
    rc, errors, seen = asyncio.run(run_sipp_registrar(tmp_path, "s3cret-pass"))
    assert rc == 0, errors[-2000:]  # sipp's verifyauth accepted both REGISTERs; Expires: 0 seen
    assert seen == [RegState.REGISTERED, RegState.REGISTERED, RegState.STOPPED]


@pytest.mark.sip_peer
def test_sipp_registrar_refuses_a_wrong_password(tmp_path: Path) -> None:
    rc, _, seen = asyncio.run(run_sipp_registrar(tmp_path, "wrong"))
    assert rc != 0 and RegState.REGISTERED not in seen[:1]


class PyRegistrar(asyncio.DatagramProtocol):
    """A registrar on 127.0.0.1 that uses our DigestServer (SHA-256) to challenge and verify."""

    def __init__(self, password: str, algorithm: str = "SHA-256") -> None:
        self.server = DigestServer("voxeron-test", algorithm=algorithm, lifetime_s=30)
        self.users = {"box1": password}
        self.transport: asyncio.DatagramTransport | None = None
        self.verdicts: list[Verdict] = []
        self.expires: list[str] = []
        self.drop_first = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = parse_message(data)
        assert isinstance(request, SipRequest) and self.transport is not None
        if self.drop_first > 0:  # lose a datagram: the client must retransmit
            self.drop_first -= 1
            return
        now = asyncio.get_running_loop().time()
        self.expires.append(request.headers.get("Expires") or "")
        auth = request.headers.get("Authorization")
        if auth is None:
            reply = build_response(request, 401, "Unauthorized", to_tag="reg",
                                   extra=[("WWW-Authenticate", self.server.challenge(now, addr[0]))])
        else:
            verdict = self.server.verify(parse_credentials(auth), "REGISTER", self.users, now, addr[0])
            self.verdicts.append(verdict)
            status = 200 if verdict is Verdict.OK else 403
            reply = build_response(request, status, to_tag="reg", extra=[("Expires", "30")])
        self.transport.sendto(reply.to_bytes(), addr)


def test_sha256_digest_against_our_registrar_with_a_lost_datagram() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        registrar = PyRegistrar("pa55")
        registrar.drop_first = 1
        transport, _ = await loop.create_datagram_endpoint(lambda: registrar, local_addr=("127.0.0.1", 0))
        address = transport.get_extra_info("sockname")[:2]

        async def body(agent: SipAgent) -> None:
            client = RegisterClient(agent, settings(agent, address, "pa55"))
            client.start()
            assert await eventually(lambda: client.state is RegState.REGISTERED, 5)
            assert client.machine is not None and client.machine.last_status == 200
            await client.stop()
            assert client.state is RegState.STOPPED

        try:
            await with_agent(body)
        finally:
            transport.close()
        assert registrar.verdicts == [Verdict.OK, Verdict.OK]  # the answer, then the unregister
        assert registrar.expires == ["3600", "3600", "0"]

    asyncio.run(scenario())


def test_wrong_password_backs_off_and_retries() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        registrar = PyRegistrar("right")
        transport, _ = await loop.create_datagram_endpoint(lambda: registrar, local_addr=("127.0.0.1", 0))
        address = transport.get_extra_info("sockname")[:2]

        async def body(agent: SipAgent) -> None:
            client = RegisterClient(agent, settings(agent, address, "wrong"))
            client.start()
            assert client.machine is not None
            machine = client.machine
            assert await eventually(lambda: machine.failures >= 2, 5)  # 0.2 s, then 0.4 s backoff
            assert machine.state in (RegState.BACKOFF, RegState.REGISTERING)
            await client.stop()
            assert client.state is RegState.STOPPED

        try:
            await with_agent(body)
        finally:
            transport.close()
        assert registrar.verdicts and set(registrar.verdicts) == {Verdict.BAD}

    asyncio.run(scenario())


def test_registration_machine_timers_without_a_clock() -> None:
    """The pure machine: timeout backs off exponentially, a 200 schedules the refresh at 0.8."""
    s = RegisterSettings(("127.0.0.1", 5060), "pbx.example", "voxeron", ("127.0.0.1", 5070),
                         password="x", expires_s=100, t1=0.5, backoff_s=5, max_backoff_s=20)
    reg = Registration(s, now=0.0)
    first = reg.poll(0.0)
    assert first is not None and b"Expires: 100" in first and reg.state is RegState.REGISTERING
    assert reg.poll(0.5) == first  # Timer E retransmission
    t = 0.5
    while reg.state is RegState.REGISTERING:
        t = reg.wakeup or t
        reg.poll(t)
    assert reg.state is RegState.BACKOFF and t == pytest.approx(32.0)  # Timer F: 64*T1
    assert reg.wakeup == pytest.approx(37.0)  # first backoff 5 s
    again = reg.poll(37.0)
    assert again is not None
    request = parse_message(again)
    assert isinstance(request, SipRequest)
    ok = build_response(request, 200, extra=[("Contact", "<sip:voxeron@127.0.0.1:5070>;expires=50")])
    assert reg.on_response(parse_message(ok.to_bytes()), 38.0) is None  # type: ignore[arg-type]
    assert reg.state is RegState.REGISTERED and reg.wakeup == pytest.approx(38.0 + 40.0)
    assert reg.registered_until == pytest.approx(88.0) and reg.failures == 0
    stray = build_response(request, 200)  # the same response again: no longer pending, ignored
    assert reg.on_response(stray, 39.0) is None and reg.state is RegState.REGISTERED
    bye = reg.stop(40.0)
    assert bye is not None and b"Expires: 0" in bye and reg.state is RegState.UNREGISTERING


def test_voice_config_wires_the_register_client() -> None:
    """VoiceConfig keys -> RegisterClient on the agent's socket (what serve_voice starts)."""
    from appliance.config import VoiceConfig
    from appliance.voice.service import inbound_access, register_client

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        registrar = PyRegistrar("pa55", algorithm="MD5")
        transport, _ = await loop.create_datagram_endpoint(lambda: registrar, local_addr=("127.0.0.1", 0))
        host, port = transport.get_extra_info("sockname")[:2]
        cfg = VoiceConfig(sip_host="127.0.0.1", sip_registrar=f"{host}:{port}",
                          sip_register_auth_user="box1", sip_register_password="pa55",
                          sip_register_expires_s=120)
        assert register_client(VoiceConfig(), None) is None  # type: ignore[arg-type]  # off by default
        assert inbound_access(VoiceConfig()).trusted("127.0.0.1")
        assert not inbound_access(VoiceConfig()).trusted("192.168.1.20")

        async def body(agent: SipAgent) -> None:
            client = register_client(cfg, agent)
            assert client is not None and client.settings.contact == ("127.0.0.1", agent.port)
            client.start()
            assert await eventually(lambda: client.state is RegState.REGISTERED, 5)
            await client.stop()

        try:
            await with_agent(body)
        finally:
            transport.close()
        assert registrar.verdicts == [Verdict.OK, Verdict.OK] and registrar.expires == ["120", "120", "0"]

    asyncio.run(scenario())
