"""Stream framing of SIP over TCP (RFC 3261 18.3): Content-Length decides, nothing else."""

from __future__ import annotations

from appliance.voice.sip_tcp import FramingError, StreamFramer

MSG = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nl: 5\r\n\r\nhello"


def test_messages_split_anywhere_and_pipelined() -> None:
    framer = StreamFramer()
    stream = b"\r\n" + MSG + MSG + b"\r\n\r\n" + MSG
    out: list[bytes | FramingError] = []
    for i in range(len(stream)):
        out += framer.feed(stream[i:i + 1])
    assert out == [MSG, MSG, b"", MSG] and not framer.pending


def test_framing_errors() -> None:
    cases = {
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n": "required",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n": "bad Content-Length",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n": "conflicting",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n": "too large",
    }
    for data, reason in cases.items():
        [error] = StreamFramer().feed(data + MSG)
        assert isinstance(error, FramingError) and reason in error.reason, data
        assert error.head.startswith(b"OPTIONS")
    framer = StreamFramer(max_header=100)
    [error] = framer.feed(b"X" * 101)
    assert isinstance(error, FramingError) and "header" in error.reason and not framer.pending


def test_partial_body_waits() -> None:
    framer = StreamFramer()
    assert framer.feed(MSG[:-2]) == [] and framer.pending
    assert framer.feed(MSG[-2:]) == [MSG]
