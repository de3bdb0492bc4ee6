"""SIP grammar: parsing, serialising, responses, and torture-style input in the spirit of RFC 4475."""

from __future__ import annotations

import random

import pytest

from appliance.voice.sip_message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    build_response,
    canonical_name,
    parse_message,
    salvage_request,
)
from appliance.voice.sip_uri import parse_name_addr, parse_uri, parse_via

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def invite(body: bytes = SDP, extra: str = "", length: int | None = None) -> bytes:
    head = (
        "INVITE sip:order@127.0.0.1:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Alice" <sip:5551234@127.0.0.1>;tag=1928301774\r\n'
        "To: <sip:order@127.0.0.1>\r\n"
        "Call-ID: a84b4c76e66710@127.0.0.1\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:5551234@127.0.0.1:5070>\r\n"
        "Content-Type: application/sdp\r\n"
        f"{extra}"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


def test_parses_a_typical_invite() -> None:
    msg = parse_message(invite())
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert (msg.uri.user, msg.uri.host, msg.uri.port) == ("order", "127.0.0.1", 5060)
    assert msg.call_id == "a84b4c76e66710@127.0.0.1"
    assert (msg.cseq.number, msg.cseq.method) == (314159, "INVITE")
    assert msg.from_addr.display == "Alice" and msg.from_addr.tag == "1928301774"
    assert msg.to_addr.tag is None
    assert msg.vias[0].branch == "z9hG4bK776asdhds" and msg.vias[0].sent_by == ("127.0.0.1", 5070)
    assert msg.content_type == "application/sdp"
    assert msg.body == SDP


def test_compact_forms_and_case_insensitive_names() -> None:
    data = (
        b"OPTIONS sip:order@127.0.0.1 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1\r\n"
        b"f: <sip:a@127.0.0.1>;tag=1\r\nt: <sip:order@127.0.0.1>\r\ni: cid-1\r\n"
        b"cSeQ: 1 OPTIONS\r\nm: <sip:a@127.0.0.1>\r\nk: timer\r\ns: lunch\r\n"
        b"c: text/plain\r\nl: 5\r\n\r\nhello"
    )
    msg = parse_message(data)
    assert msg.call_id == "cid-1"
    assert msg.headers.get("SUBJECT") == "lunch"
    assert msg.headers.get("supported") == "timer"
    assert msg.headers.get("Contact") == "<sip:a@127.0.0.1>"
    assert msg.content_type == "text/plain" and msg.body == b"hello"
    assert canonical_name("call-id") == "Call-ID" and canonical_name("x-my-header") == "X-My-Header"


def test_folded_header_lines_are_joined() -> None:
    msg = parse_message(invite(extra="Subject: I know you're there,\r\n  pick up the phone\r\n\tplease\r\n"))
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone please"


def test_multiple_vias_in_one_line_and_across_lines_keep_order() -> None:
    data = invite().replace(
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n",
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa, SIP / 2.0 / UDP [::1]:5080;branch=z9hG4bKb\r\n"
        b"v: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKc;received=10.0.0.9\r\n",
    )
    vias = parse_message(data).vias
    assert [v.branch for v in vias] == ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]
    assert vias[1].host == "::1" and vias[1].port == 5080
    assert vias[2].transport == "TCP" and vias[2].sent_by == ("10.0.0.1", 5060)


def test_content_length_is_honoured() -> None:
    assert parse_message(invite(length=10)).body == SDP[:10]  # extra octets discarded
    with pytest.raises(SipParseError, match="shorter"):
        parse_message(invite(length=len(SDP) + 1))
    no_length = invite().replace(f"Content-Length: {len(SDP)}\r\n".encode(), b"")
    assert parse_message(no_length).body == SDP  # UDP: the datagram ends the message
    with pytest.raises(SipParseError):
        parse_message(invite(extra="Content-Length: 3\r\n"))  # conflicting values


def test_uri_parsing() -> None:
    uri = parse_uri("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "secret", "example.com", 5061)
    assert uri.param("transport") == "tcp" and uri.param("lr") is None
    assert uri.headers == "subject=hi"
    assert str(uri) == "sips:alice:secret@example.com:5061;transport=tcp;lr?subject=hi"
    v6 = parse_uri("sip:[2001:db8::10]:5070")
    assert (v6.user, v6.host, v6.port, str(v6)) == (None, "2001:db8::10", 5070, "sip:[2001:db8::10]:5070")
    assert parse_uri("sip:sips%3Auser%40example.com@example.net").user == "sips%3Auser%40example.com"
    with pytest.raises(SipParseError) as err:
        parse_uri("tel:+15551234")
    assert err.value.status == 416
    for bad in ("sip:", "sip:host:99999", "sip:@host", "sip:ho st", "sip:[::1", "nocolon"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_name_addr_forms() -> None:
    a = parse_name_addr('"Bob \\"the\\" Builder" <sip:bob@h;transport=udp>;tag=abc;x')
    assert a.display == 'Bob "the" Builder' and a.tag == "abc" and a.uri.param("transport") == "udp"
    b = parse_name_addr("sip:bob@h;tag=xyz")  # bare addr-spec: ;params belong to the header
    assert b.tag == "xyz" and b.uri.params == ()
    c = parse_name_addr("Bob  Smith <sip:bob@h>")
    assert c.display == "Bob Smith" and str(c.with_tag("t1")) == '"Bob Smith" <sip:bob@h>;tag=t1'
    for bad in ("<sip:bob@h", '"unterminated <sip:b@h>', "<sip:b@h> junk", ""):
        with pytest.raises(SipParseError):
            parse_name_addr(bad)


def test_via_received_and_rport_are_stamped() -> None:
    via = parse_via("SIP/2.0/UDP phone.invalid:5070;branch=z9hG4bKx;rport")
    stamped = via.with_received("127.0.0.1", 40000)
    assert str(stamped) == "SIP/2.0/UDP phone.invalid:5070;branch=z9hG4bKx;rport=40000;received=127.0.0.1"
    plain = parse_via("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx").with_received("127.0.0.1", 5070)
    assert "received" not in str(plain)


def test_build_response_copies_the_transaction_headers() -> None:
    data = invite().replace(b"Via: ", b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp\r\nVia: ", 1)
    request = parse_message(data)
    assert isinstance(request, SipRequest)
    ok = build_response(request, 200, to_tag="ourtag", extra=[("Contact", "<sip:order@127.0.0.1>")])
    assert (ok.status, ok.reason) == (200, "OK")
    assert ok.headers.get_all("Via") == request.headers.get_all("Via")
    assert ok.to_addr.tag == "ourtag" and ok.from_addr.tag == "1928301774"
    assert ok.call_id == request.call_id and ok.cseq == request.cseq
    trying = build_response(request, 100, to_tag="ourtag")
    assert trying.to_addr.tag is None  # no tag on 100 Trying
    tagged = build_response(parse_message(ok.to_bytes().replace(b"SIP/2.0 200 OK", b"BYE sip:x@h SIP/2.0")
                                          .replace(b"CSeq: 314159 INVITE", b"CSeq: 2 BYE")), 200, to_tag="other")
    assert tagged.to_addr.tag == "ourtag"  # an existing tag is kept


def test_serialise_round_trip_rewrites_content_length() -> None:
    request = parse_message(invite())
    assert isinstance(request, SipRequest)
    request.body = b"v=0\r\n"
    again = parse_message(request.to_bytes())
    assert isinstance(again, SipRequest)
    assert again.headers.get_all("Content-Length") == ["5"] and again.body == b"v=0\r\n"
    assert (again.method, str(again.uri), again.call_id) == ("INVITE", "sip:order@127.0.0.1:5060", request.call_id)


def test_response_parsing() -> None:
    data = (b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
            b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n")
    msg = parse_message(data)
    assert isinstance(msg, SipResponse) and (msg.status, msg.reason) == (486, "Busy Here")


def test_headers_set_values_replaces_in_place() -> None:
    headers = Headers([("Via", "a, b"), ("From", "f"), ("v", "c")])
    assert headers.values("Via") == ["a", "b", "c"]
    headers.set_values("via", ["x", "y"])
    assert list(headers) == [("Via", "x"), ("Via", "y"), ("From", "f")]


def test_salvage_recovers_enough_to_answer_400() -> None:
    broken = invite().replace(b"CSeq: 314159 INVITE", b"CSeq: many INVITE")
    with pytest.raises(SipParseError):
        parse_message(broken)
    salvaged = salvage_request(broken)
    assert salvaged is not None and salvaged[0] == "INVITE"
    reply = build_response(salvaged[1], 400, to_tag="t")
    assert reply.headers.get("Via") == "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport"
    assert salvage_request(b"\x00\x01garbage") is None
    assert salvage_request(invite().replace(b"Via:", b"Vya:")) is None  # no Via: nowhere to answer


# Torture-style messages of our own, in the spirit of RFC 4475: (name, datagram, parses?).
TORTURE: list[tuple[str, bytes, bool]] = [
    ("leading CRLFs are ignored", b"\r\n\r\n" + invite(), True),
    ("bare LF line endings", invite(b"").replace(b"\r\n", b"\n"), True),
    ("whitespace around header colon", invite().replace(b"Call-ID:", b"Call-ID   :"), True),
    ("unknown headers kept", invite(extra="X-Weird: ;;,,<<>>\r\n"), True),
    ("escaped user in request URI", invite().replace(b"sip:order@", b"sip:or%64er@"), True),
    ("IPv6 request URI", invite().replace(b"sip:order@127.0.0.1:5060", b"sip:order@[::1]:5060"), True),
    ("long header value", invite(extra="X-Long: " + "a" * 5000 + "\r\n"), True),
    ("empty Subject", invite(extra="Subject:\r\n"), True),
    ("body shorter than Content-Length", invite(length=len(SDP) + 50), False),
    ("negative Content-Length", invite(length=-1), False),
    ("non-numeric Content-Length", invite().replace(f"Content-Length: {len(SDP)}".encode(), b"Content-Length: ten"), False),
    ("missing Call-ID", invite().replace(b"Call-ID: a84b4c76e66710@127.0.0.1\r\n", b""), False),
    ("missing From", invite().replace(b'From: "Alice" <sip:5551234@127.0.0.1>;tag=1928301774\r\n', b""), False),
    ("missing Via", invite().replace(b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n", b""), False),
    ("CSeq method mismatch", invite().replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 ACK"), False),
    ("CSeq number too large", invite().replace(b"314159", b"4294967296"), False),
    ("bad SIP version", invite().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), False),
    ("not SIP at all", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ("request line with two parts", invite().replace(b" SIP/2.0\r\n", b"\r\n", 1), False),
    ("space in request URI", invite().replace(b"sip:order@", b"sip:or der@"), False),
    ("non-SIP request URI scheme", invite().replace(b"sip:order@127.0.0.1:5060", b"http://x/"), False),
    ("header without colon", invite(extra="Garbage line\r\n"), False),
    ("continuation of start line", b" INVITE sip:a@h SIP/2.0\r\n x\r\n\r\n", False),
    ("unterminated display name", invite().replace(b'"Alice" <', b'"Alice <'), False),
    ("unterminated angle bracket", invite().replace(b"To: <sip:order@127.0.0.1>", b"To: <sip:order@127.0.0.1"), False),
    ("Via without transport", invite().replace(b"SIP/2.0/UDP 127.0.0.1:5070", b"SIP/2.0 127.0.0.1:5070"), False),
    ("Via port out of range", invite().replace(b"127.0.0.1:5070;branch", b"127.0.0.1:70000;branch"), False),
    ("invalid UTF-8 in headers", invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 70\r\nX-Bin: \xff\xfe"), False),
    ("NUL in headers", invite(extra="X-Nul: a\x00b\r\n"), False),
    ("status code out of range", b"SIP/2.0 999 Nope\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", False),
    ("empty datagram", b"", False),
    ("only CRLFs", b"\r\n\r\n", False),
    ("binary garbage", bytes(range(256)), False),
    ("truncated mid-header", invite()[:60], False),
    ("Max-Forwards not a number", invite().replace(b"Max-Forwards: 70", b"Max-Forwards: lots"), False),
]


@pytest.mark.parametrize("name,data,parses", TORTURE, ids=[t[0] for t in TORTURE])
def test_torture_messages(name: str, data: bytes, parses: bool) -> None:
    if parses:
        assert isinstance(parse_message(data), SipRequest | SipResponse)
    else:
        with pytest.raises(SipParseError):
            parse_message(data)


def test_mutated_messages_parse_or_raise_sip_parse_error_only() -> None:
    rng = random.Random(4475)
    seeds = [invite(), invite().replace(b"\r\n", b"\n"),
             build_response(parse_message(invite()), 200, to_tag="t", body=SDP).to_bytes()]
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            if not data:
                break
            op, pos = rng.random(), rng.randrange(len(data))
            if op < 0.4:
                data[pos] = rng.randrange(256)
            elif op < 0.6:
                del data[pos : pos + rng.randint(1, 20)]
            elif op < 0.8:
                data[pos:pos] = rng.choice([b":", b";", b"<", b'"', b"\r\n", b" ", b",", b"\x00", b"%"])
            else:
                data = data[:pos]
        try:
            parse_message(bytes(data))
            outcomes["parsed"] += 1
        except SipParseError:
            outcomes["refused"] += 1
    assert outcomes["parsed"] > 100 and outcomes["refused"] > 100, outcomes
