"""SDP offer/answer: what the box accepts, what it answers, what it refuses (488)."""

from __future__ import annotations

import pytest

from appliance.voice.sdp import SdpError, build_answer, build_offer, negotiate_audio, parse_sdp


def offer(media: str = "m=audio 49170 RTP/AVP 0 8 101", attrs: str = "", conn: str = "c=IN IP4 127.0.0.1") -> str:
    return "\r\n".join(["v=0", "o=ata 2890844526 2890844526 IN IP4 127.0.0.1", "s=-", conn, "t=0 0",
                        media, *(a for a in attrs.split("|") if a)]) + "\r\n"


def test_parses_an_ata_offer() -> None:
    sd = parse_sdp(offer(attrs="a=rtpmap:0 PCMU/8000|a=rtpmap:101 telephone-event/8000|a=fmtp:101 0-15|a=ptime:20|a=sendrecv"))
    assert sd.connection == "127.0.0.1"
    (audio,) = sd.media
    assert (audio.kind, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP", ("0", "8", "101"))
    assert audio.ptime == 20 and audio.direction == "sendrecv"
    assert audio.rtpmap(101) == ("TELEPHONE-EVENT", 8000)
    assert audio.rtpmap(8) == ("PCMA", 8000)  # static payload type without a=rtpmap


def test_prefers_pcmu_and_keeps_telephone_event() -> None:
    plan = negotiate_audio(parse_sdp(offer("m=audio 4000 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000")))
    assert (plan.encoding, plan.payload_type, plan.dtmf_payload_type) == ("PCMU", 0, 101)
    assert (plan.remote_address, plan.remote_port) == ("127.0.0.1", 4000)


def test_falls_back_to_pcma_and_maps_dynamic_payload_types() -> None:
    pcma = negotiate_audio(parse_sdp(offer("m=audio 4000 RTP/AVP 18 8")))
    assert (pcma.encoding, pcma.payload_type, pcma.dtmf_payload_type) == ("PCMA", 8, None)
    dynamic = negotiate_audio(parse_sdp(offer("m=audio 4000 RTP/AVP 96 97", "a=rtpmap:96 PCMU/16000|a=rtpmap:97 PCMU/8000")))
    assert dynamic.payload_type == 97  # PCMU at 16 kHz is not G.711


def test_no_common_codec_or_profile_is_refused() -> None:
    for media in ("m=audio 4000 RTP/AVP 18 9", "m=audio 4000 RTP/SAVP 0", "m=audio 0 RTP/AVP 0",
                  "m=video 4000 RTP/AVP 0"):
        with pytest.raises(SdpError):
            negotiate_audio(parse_sdp(offer(media)))


def test_media_level_connection_and_direction_win() -> None:
    sd = parse_sdp(offer("m=audio 4000 RTP/AVP 0", "c=IN IP4 127.0.0.5|a=sendonly"))
    plan = negotiate_audio(sd)
    assert plan.remote_address == "127.0.0.5" and plan.direction == "sendonly"


def test_answer_mirrors_direction_and_refuses_other_streams() -> None:
    sd = parse_sdp(offer("m=video 5000 RTP/AVP 31", "m=audio 4000 RTP/AVP 8 0 101|a=rtpmap:101 telephone-event/8000|a=sendonly"))
    plan = negotiate_audio(sd)
    answer = build_answer(sd, plan, "127.0.0.1", 30000, session_id=42).decode()
    lines = answer.split("\r\n")
    assert "m=video 0 RTP/AVP 31" in lines and "m=audio 30000 RTP/AVP 0 101" in lines
    assert lines.index("m=video 0 RTP/AVP 31") < lines.index("m=audio 30000 RTP/AVP 0 101")
    assert {"a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=ptime:20",
            "a=recvonly", "c=IN IP4 127.0.0.1"} <= set(lines)
    again = negotiate_audio(parse_sdp(answer))
    assert (again.encoding, again.remote_port, again.dtmf_payload_type) == ("PCMU", 30000, 101)


def test_offer_of_the_caller_is_pcmu() -> None:
    plan = negotiate_audio(parse_sdp(build_offer("127.0.0.1", 7000, session_id=1)))
    assert (plan.encoding, plan.payload_type, plan.remote_port, plan.dtmf_payload_type) == ("PCMU", 0, 7000, 101)


@pytest.mark.parametrize("body", [
    b"", b"o=x\r\n", b"v=0\r\nm=audio port RTP/AVP 0\r\n", b"v=0\r\nc=IN IP4\r\n",
    b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", b"v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:zero PCMU\r\n",
    b"v=0\r\nthis is not sdp\r\n", b"\xff\xfe", b"v=0\r\nc=IN IP9 1.2.3.4\r\n",
])
def test_malformed_sdp_raises_sdp_error(body: bytes) -> None:
    with pytest.raises(SdpError):
        parse_sdp(body)
