"""Inbound access control over real UDP: trusted networks call straight in, others must pass digest.

The untrusted caller sends from 127.0.0.2 (still loopback, but outside the 127.0.0.1/32
the agent is told to trust), so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio

import pytest

from appliance.voice.sip_access import Admit, Challenge, Forbid, InboundAccess
from appliance.voice.sip_agent import SipAgent
from appliance.voice.sip_auth import (
    DigestChallenge,
    authorization_value,
    parse_challenge,
)
from appliance.voice.sip_message import SipRequest, SipResponse, parse_message
from tests.integration.sip_phone import Phone, idle, run, udp


def outside_phone(agent_port: int) -> Phone:
    """A Phone whose SIP socket sends from 127.0.0.2, outside the trusted 127.0.0.1/32."""
    phone = Phone(agent_port)
    phone.sip.close()
    phone.sip = udp("127.0.0.2")
    phone.port = phone.sip.getsockname()[1]
    return phone


def with_auth(raw: bytes, header: str) -> bytes:
    head, sep, body = raw.partition(b"\r\n\r\n")
    return head + f"\r\nAuthorization: {header}".encode() + sep + body


async def challenged(phone: Phone) -> DigestChallenge:
    phone.send(phone.invite())
    refused = await phone.expect(401)
    phone.send(phone.request("ACK", to_tag=refused.to_addr.tag))  # same branch as the INVITE
    return parse_challenge(refused.headers.get("WWW-Authenticate") or "")


def answer(phone: Phone, challenge: DigestChallenge, password: str) -> None:
    uri = f"sip:order@127.0.0.1:{phone.agent[1]}"
    auth = authorization_value(challenge, "ata", password, "INVITE", uri)
    phone.send(with_auth(phone.invite(cseq=2, branch="z9hG4bKretry" + phone.branch[7:]), auth))


def gate(**kw: object) -> InboundAccess:
    return InboundAccess(["127.0.0.1/32"], {"ata": "s3cret"}, **kw)  # type: ignore[arg-type]


def test_untrusted_source_is_challenged_and_a_right_answer_gets_the_call() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = outside_phone(agent.port)
        challenge = await challenged(phone)
        assert challenge.realm == "voxeron" and challenge.qop == ("auth",) and challenge.opaque
        assert agent.active_calls == 0  # a 401 sets nothing up
        answer(phone, challenge, "s3cret")
        ok = await phone.expect(200)
        assert ok.content_type == "application/sdp" and agent.active_calls == 1
        phone.ack(ok)
        phone.close()

    run(scenario, idle, access=gate(), t1=0.05)


def test_wrong_password_gets_403_and_no_call() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = outside_phone(agent.port)
        answer(phone, await challenged(phone), "guess")
        refused = await phone.expect(403)
        assert agent.active_calls == 0
        assert "wrong credentials" not in refused.to_bytes().decode()  # no hints in the answer
        phone.close()

    run(scenario, idle, access=gate(), t1=0.05)


def test_expired_nonce_is_rechallenged_as_stale() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = outside_phone(agent.port)
        challenge = await challenged(phone)
        await asyncio.sleep(0.3)  # past the nonce lifetime below
        answer(phone, challenge, "s3cret")
        again = await phone.expect(401)
        assert parse_challenge(again.headers.get("WWW-Authenticate") or "").stale
        assert agent.active_calls == 0
        phone.close()

    run(scenario, idle, access=gate(nonce_lifetime_s=0.2), t1=0.05)


def test_trusted_source_calls_without_auth_and_options_stays_open() -> None:
    async def scenario(agent: SipAgent) -> None:
        inside = Phone(agent.port)
        inside.send(inside.invite())
        inside.ack(await inside.expect(200))
        outside = outside_phone(agent.port)
        outside.send(outside.request("OPTIONS"))  # keep-alive / qualify probes stay answerable
        assert (await outside.expect(200)).headers.get("Allow")
        inside.close()
        outside.close()

    run(scenario, idle, access=gate(), t1=0.05)


def test_without_credentials_an_untrusted_source_is_refused_outright() -> None:
    async def scenario(agent: SipAgent) -> None:
        phone = outside_phone(agent.port)
        phone.send(phone.invite())
        await phone.expect(403)
        assert agent.active_calls == 0
        phone.close()

    run(scenario, idle, access=InboundAccess(["127.0.0.1/32"]), t1=0.05)


@pytest.mark.parametrize(("source", "trusted"), [
    ("127.0.0.1", True), ("127.0.0.2", False), ("::ffff:127.0.0.1", True), ("::1", False),
    ("not-an-ip", False)])
def test_trusted_networks(source: str, trusted: bool) -> None:
    assert gate().trusted(source) is trusted
    assert InboundAccess().trusted("::1") and InboundAccess.open().trusted("203.0.113.9")


def test_decisions_without_a_socket() -> None:
    access = gate(algorithm="SHA-256")
    invite = Phone.__new__(Phone)  # only request(): build bytes without opening sockets
    invite.port, invite.agent, invite.branch, invite.call_id = 5062, ("127.0.0.1", 5060), "z9hG4bKx", "c1"
    raw = invite.request("INVITE")
    request = parse_message(raw)
    assert isinstance(request, SipRequest) and not isinstance(request, SipResponse)
    assert access.check(request, "127.0.0.1", 0.0) == Admit()
    first = access.check(request, "10.1.1.1", 5.0)
    assert isinstance(first, Challenge) and "algorithm=SHA-256" in first.header
    auth = authorization_value(parse_challenge(first.header), "ata", "s3cret", "INVITE", "sip:order@x")
    signed = parse_message(with_auth(raw, auth))
    assert isinstance(signed, SipRequest)
    assert access.check(signed, "10.1.1.1", 6.0) == Admit("ata")
    assert isinstance(access.check(signed, "10.1.1.2", 6.0), Forbid)  # nonce bound to the source
    junk = parse_message(with_auth(raw, 'Digest realm="voxeron", nonce=x'))
    assert isinstance(junk, SipRequest) and isinstance(access.check(junk, "10.1.1.1", 6.0), Forbid)
    foreign = parse_message(with_auth(raw, auth.replace('realm="voxeron"', 'realm="pbx"')))
    assert isinstance(foreign, SipRequest) and isinstance(access.check(foreign, "10.1.1.1", 6.0), Challenge)
