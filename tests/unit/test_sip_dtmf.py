"""RFC 4733 telephone-events and SIP INFO relay: each key press is reported exactly once."""

from __future__ import annotations

import pytest

from appliance.voice.dtmf import (
    Digit,
    DtmfParseError,
    DtmfReceiver,
    ToneEvent,
    parse_event,
    parse_info,
)


def press(rx: DtmfReceiver, ts: int, key: int, ends: int = 3) -> list[Digit]:
    out: list[Digit] = []
    for dur in (160, 320, 480):
        out += rx.feed(ts, ToneEvent(key, False, 10, dur))
    for _ in range(ends):  # the end packet is sent three times
        out += rx.feed(ts, ToneEvent(key, True, 10, 800))
    return out


def test_payload_round_trip_and_short_payloads() -> None:
    event = ToneEvent(11, True, 10, 1280)
    assert parse_event(event.to_bytes()) == event and event.digit == "#"
    assert parse_event(bytes([5, 0x0A, 0, 160])) == ToneEvent(5, False, 10, 160)
    with pytest.raises(DtmfParseError):
        parse_event(b"\x01\x02")


def test_retransmitted_end_packets_count_once_and_duration_is_kept() -> None:
    rx = DtmfReceiver()
    assert press(rx, 1000, 1) == [Digit("1", 100)]
    assert press(rx, 5000, 1) == [Digit("1", 100)]  # the same key again is a new press
    assert press(rx, 9000, 10) == [Digit("*", 100)]


def test_a_lost_end_is_reported_when_the_next_event_starts() -> None:
    rx = DtmfReceiver()
    assert press(rx, 1000, 4, ends=0) == []
    assert press(rx, 3000, 2) == [Digit("4", 60), Digit("2", 100)]


def test_non_dtmf_events_are_ignored() -> None:
    assert press(DtmfReceiver(), 1000, 36) == []  # fax CNG tone (RFC 4734)


def test_info_bodies() -> None:
    relay = b"Signal=5\r\nDuration=250\r\n"
    assert parse_info("application/dtmf-relay", relay) == Digit("5", 250)
    assert parse_info("application/dtmf-relay; charset=x", b"signal = *\r\n") == Digit("*", 0)
    assert parse_info("application/dtmf", b"11") == Digit("#", 0)
    assert parse_info("application/dtmf-relay", b"Signal=Z\r\n") is None
    assert parse_info("text/plain", b"Signal=1") is None
    assert parse_info("application/dtmf-relay", b"\xff\xfe") is None
