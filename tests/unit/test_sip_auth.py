"""Digest authentication against the RFC 7616 worked example, and our stateless server side."""

from __future__ import annotations

import pytest

from appliance.voice.sip_auth import (
    DigestChallenge,
    DigestError,
    DigestServer,
    Verdict,
    authorization_value,
    choose_challenge,
    digest_response,
    parse_challenge,
    parse_credentials,
)

# RFC 7616 3.9.1: the inputs, and the published response of each algorithm.
RFC = {"username": "Mufasa", "realm": "http-auth@example.org", "password": "Circle of Life",
       "method": "GET", "uri": "/dir/index.html",
       "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"}
RFC_RESPONSES = {"MD5": "8ca523f5e9506fed4657c9700eebdbec",
                 "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"}


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_worked_example(algorithm: str) -> None:
    got = digest_response(algorithm, RFC["username"], RFC["realm"], RFC["password"], RFC["method"],
                          RFC["uri"], RFC["nonce"], "auth", "00000001", RFC["cnonce"])
    assert got == RFC_RESPONSES[algorithm]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example_through_challenge_and_header(algorithm: str) -> None:
    challenge = parse_challenge(
        f'Digest realm="{RFC["realm"]}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC["nonce"]}", opaque="{RFC["opaque"]}"')
    assert challenge.qop == ("auth", "auth-int") and challenge.opaque == RFC["opaque"]
    value = authorization_value(challenge, RFC["username"], RFC["password"], RFC["method"],
                                RFC["uri"], cnonce=RFC["cnonce"])
    creds = parse_credentials(value)
    assert creds.response == RFC_RESPONSES[algorithm]
    assert (creds.nc, creds.qop, creds.cnonce, creds.opaque) == ("00000001", "auth", RFC["cnonce"],
                                                                RFC["opaque"])


def test_rfc2617_style_without_qop_and_sess_variant() -> None:
    # RFC 2617 3.5 / the SIP auth examples draft: no qop, MD5.
    plain = digest_response("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET",
                            "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093")
    assert plain == "670fd8c2df070c60b045671b8b24ff02"
    sess = digest_response("MD5-sess", "u", "r", "p", "REGISTER", "sip:r", "n", "auth", "00000001", "c")
    assert sess != digest_response("MD5", "u", "r", "p", "REGISTER", "sip:r", "n", "auth", "00000001", "c")


def test_choose_prefers_sha256_and_skips_junk() -> None:
    chosen = choose_challenge(['Basic realm="x"', 'Digest realm="r", nonce="n1", algorithm=MD5',
                               'Digest realm="r", nonce="n2", algorithm=SHA-256',
                               'Digest realm="r", nonce="n3", algorithm=SHA-512-256'])
    assert (chosen.algorithm, chosen.nonce) == ("SHA-256", "n2")
    with pytest.raises(DigestError):
        choose_challenge(['Digest realm="r"', "Digest nonce=\"x\", realm=\"unterminated"])


def test_quoted_values_with_commas_and_escapes() -> None:
    c = parse_challenge(r'Digest realm="a, \"b\"",nonce="x",stale=TRUE')
    assert (c.realm, c.stale, c.algorithm, c.qop) == ('a, "b"', True, "MD5", ())
    assert parse_credentials(authorization_value(c, "u", "p", "INVITE", "sip:x")).realm == 'a, "b"'


def test_auth_int_only_is_refused() -> None:
    with pytest.raises(DigestError):
        authorization_value(DigestChallenge("r", "n", qop=("auth-int",)), "u", "p", "INVITE", "sip:x")


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_server_round_trip_stale_and_bad(algorithm: str) -> None:
    server = DigestServer("voxeron", algorithm=algorithm, lifetime_s=30)
    users = {"ata": "s3cret"}

    def answer(now: float, password: str = "s3cret", bound: str = "10.0.0.5",
               method: str = "INVITE") -> Verdict:
        challenge = parse_challenge(server.challenge(now, bound))
        creds = parse_credentials(authorization_value(challenge, "ata", password, method, "sip:order@box"))
        return server.verify(creds, "INVITE", users, now + 1, "10.0.0.5")

    assert answer(100.0) is Verdict.OK
    assert answer(100.0, password="wrong") is Verdict.BAD
    assert answer(100.0, bound="10.0.0.6") is Verdict.BAD  # nonce minted for another address
    assert answer(100.0, method="BYE") is Verdict.BAD  # response hashed over another method
    challenge = parse_challenge(server.challenge(100.0, "10.0.0.5"))
    creds = parse_credentials(authorization_value(challenge, "ata", "s3cret", "INVITE", "sip:o"))
    assert server.verify(creds, "INVITE", users, 200.0, "10.0.0.5") is Verdict.STALE
    assert server.verify(creds, "INVITE", {}, 101.0, "10.0.0.5") is Verdict.BAD  # unknown user
    forged = parse_credentials(authorization_value(
        DigestChallenge("voxeron", "1.deadbeef", algorithm), "ata", "s3cret", "INVITE", "sip:o"))
    assert server.verify(forged, "INVITE", users, 1.0, "10.0.0.5") is Verdict.BAD
    other = DigestServer("voxeron", algorithm=algorithm)  # another key: its nonces are foreign
    assert other.verify(creds, "INVITE", users, 101.0, "10.0.0.5") is Verdict.BAD
    assert "stale=true" in server.challenge(1.0, stale=True)
