"""Keypad digits from the caller: RFC 4733 telephone-events in RTP, and SIP INFO relay.

Pure: `DtmfReceiver` is fed parsed payloads with their RTP timestamp and reports each
key press once, when its end packet arrives (the end packet is sent three times and
all three share the event's timestamp), or when the next event starts and the end of
the previous one was lost.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

EVENTS = "0123456789*#ABCD"
_INFO_SIGNAL = re.compile(r"^\s*Signal\s*=\s*(\S+)\s*$", re.I | re.M)
_INFO_DURATION = re.compile(r"^\s*Duration\s*=\s*([0-9]{1,6})\s*$", re.I | re.M)


class DtmfParseError(ValueError):
    """A telephone-event payload or INFO body we cannot read."""


@dataclass(frozen=True)
class ToneEvent:
    """One RFC 4733 payload: event code, end bit, volume (-dBm0) and duration in samples."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The keypad symbol, or None for events other than DTMF (fax tones, flash...)."""
        return EVENTS[self.event] if self.event < len(EVENTS) else None

    def to_bytes(self) -> bytes:
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | (self.volume & 0x3F),
                           self.duration & 0xFFFF)


def parse_event(payload: bytes) -> ToneEvent:
    """Parse a telephone-event payload (RFC 4733 2.3); only the first event block is read."""
    if len(payload) < 4:
        raise DtmfParseError(f"telephone-event payload of {len(payload)} bytes")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return ToneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


@dataclass(frozen=True)
class Digit:
    """A key press: the symbol and how long it was held, in ms (8 kHz clock)."""

    symbol: str
    duration_ms: int


class DtmfReceiver:
    """Turns telephone-event packets into key presses, each reported exactly once."""

    def __init__(self) -> None:
        self._current: int | None = None  # RTP timestamp of the event in progress
        self._reported: int | None = None  # timestamp of the last event already reported
        self._last: ToneEvent | None = None

    def feed(self, timestamp: int, event: ToneEvent) -> list[Digit]:
        """Digits completed by this packet (usually none or one)."""
        out: list[Digit] = []
        if timestamp == self._reported:
            return out  # a retransmitted end packet, or a late update of a reported event
        if self._current is not None and timestamp != self._current and self._last is not None:
            out += self._report(self._current, self._last)  # the previous event's end was lost
        self._current, self._last = timestamp, event
        if event.end:
            out += self._report(timestamp, event)
        return out

    def _report(self, timestamp: int, event: ToneEvent) -> list[Digit]:
        self._reported, self._current, self._last = timestamp, None, None
        if event.digit is None:
            return []
        return [Digit(event.digit, event.duration // 8)]


def parse_info(content_type: str | None, body: bytes) -> Digit | None:
    """A digit from a SIP INFO body (application/dtmf-relay or application/dtmf), else None."""
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if kind == "application/dtmf-relay":
        signal = _INFO_SIGNAL.search(text)
        if signal is None:
            return None
        duration = _INFO_DURATION.search(text)
        symbol, ms = signal.group(1).upper(), int(duration.group(1)) if duration else 0
    elif kind == "application/dtmf":
        symbol, ms = text.strip().upper(), 0
        if symbol.isdigit() and 10 <= int(symbol) <= 15:
            symbol = EVENTS[int(symbol)]
    else:
        return None
    return Digit(symbol, ms) if len(symbol) == 1 and symbol in EVENTS else None
