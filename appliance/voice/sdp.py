"""SDP offer/answer for one G.711 audio stream (RFC 4566, RFC 3264).

We answer PCMU, else PCMA, at 8 kHz with 20 ms packets, plus telephone-event when offered.
Anything else is refused with SdpError, which the SIP agent turns into 488 Not Acceptable Here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

Encoding = Literal["PCMU", "PCMA"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]

_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 13: ("CN", 8000)}
_DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION: dict[Direction, Direction] = {
    "sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
}
_LINE = re.compile(r"^([a-z])=(.*)$")
PTIME_MS = 20


class SdpError(ValueError):
    """An SDP body we cannot read or whose media we cannot accept (answered with 488)."""


@dataclass(frozen=True)
class RtpMap:
    """An a=rtpmap line: payload type -> encoding/clock rate[/channels]."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1


@dataclass(frozen=True)
class MediaDescription:
    """One m= section with the attributes we use."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    rtpmaps: tuple[RtpMap, ...] = ()
    ptime: int | None = None
    direction: Direction | None = None

    def rtpmap(self, payload_type: int) -> tuple[str, int] | None:
        """Encoding and clock rate of `payload_type`, from a=rtpmap or the static table."""
        for m in self.rtpmaps:
            if m.payload_type == payload_type:
                return m.encoding.upper(), m.clock_rate
        return _STATIC.get(payload_type)


@dataclass(frozen=True)
class SessionDescription:
    """A parsed SDP body: session-level connection and direction, and its m= sections."""

    connection: str | None
    media: tuple[MediaDescription, ...]
    direction: Direction | None = None


@dataclass(frozen=True)
class AudioPlan:
    """The negotiated audio stream: codec, DTMF payload type and where the peer listens."""

    media_index: int
    payload_type: int
    encoding: Encoding
    dtmf_payload_type: int | None
    remote_address: str | None
    remote_port: int
    direction: Direction


def _connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value[:60]!r}")
    return parts[2].split("/")[0]


def _media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"bad m= line {value[:60]!r}")
    port_text = parts[1].split("/")[0]
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"bad m= port {parts[1][:10]!r}")
    return MediaDescription(kind=parts[0], port=int(port_text), proto=parts[2],
                            formats=tuple(parts[3:]))


def _rtpmap(value: str) -> RtpMap:
    m = re.match(r"^([0-9]{1,3})\s+([^/\s]+)/([0-9]{1,6})(?:/([0-9]{1,2}))?\s*$", value)
    if not m:
        raise SdpError(f"bad a=rtpmap {value[:60]!r}")
    return RtpMap(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4) or 1))


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse an SDP body; malformed input raises SdpError."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8") from exc
    lines = [line.strip() for line in re.split(r"\r?\n", text) if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    session_conn: str | None = None
    session_dir: Direction | None = None
    media: list[MediaDescription] = []
    for line in lines[1:]:
        m = _LINE.match(line)
        if not m:
            raise SdpError(f"bad SDP line {line[:60]!r}")
        kind, value = m.groups()
        if kind == "m":
            media.append(_media(value))
        elif kind == "c":
            if media:
                media[-1] = _with(media[-1], connection=_connection(value))
            else:
                session_conn = _connection(value)
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name in _DIRECTIONS:
                if media:
                    media[-1] = _with(media[-1], direction=name)
                else:
                    session_dir = name  # type: ignore[assignment]
            elif media and name == "rtpmap":
                media[-1] = _with(media[-1], rtpmaps=(*media[-1].rtpmaps, _rtpmap(arg)))
            elif media and name == "ptime" and arg.strip().isdigit():
                media[-1] = _with(media[-1], ptime=int(arg.strip()))
    return SessionDescription(connection=session_conn, media=tuple(media), direction=session_dir)


def _with(m: MediaDescription, **changes: object) -> MediaDescription:
    return replace(m, **changes)  # type: ignore[arg-type]


def negotiate_audio(offer: SessionDescription) -> AudioPlan:
    """Pick the first usable audio stream and PCMU (else PCMA); raise SdpError if none fits."""
    for index, m in enumerate(offer.media):
        if m.kind != "audio" or m.port == 0 or m.proto.upper() != "RTP/AVP":
            continue
        pts = [int(f) for f in m.formats if f.isascii() and f.isdigit() and int(f) < 128]
        for wanted in ("PCMU", "PCMA"):
            chosen = next((pt for pt in pts if m.rtpmap(pt) == (wanted, 8000)), None)
            if chosen is not None:
                dtmf = next((pt for pt in pts if m.rtpmap(pt) == ("TELEPHONE-EVENT", 8000)), None)
                return AudioPlan(
                    media_index=index, payload_type=chosen, encoding=wanted,  # type: ignore[arg-type]
                    dtmf_payload_type=dtmf, remote_address=m.connection or offer.connection,
                    remote_port=m.port, direction=m.direction or offer.direction or "sendrecv",
                )
    raise SdpError("no common codec: PCMU or PCMA over RTP/AVP required")


def _origin(address: str, session_id: int, version: int) -> list[str]:
    family = "IP6" if ":" in address else "IP4"
    return ["v=0", f"o=voxeron {session_id} {version} IN {family} {address}", "s=voxeron",
            f"c=IN {family} {address}", "t=0 0"]


def _audio_lines(port: int, pt: int, encoding: str, dtmf: int | None, direction: str) -> list[str]:
    formats = f"{pt}" if dtmf is None else f"{pt} {dtmf}"
    lines = [f"m=audio {port} RTP/AVP {formats}", f"a=rtpmap:{pt} {encoding}/8000"]
    if dtmf is not None:
        lines += [f"a=rtpmap:{dtmf} telephone-event/8000", f"a=fmtp:{dtmf} 0-16"]
    return [*lines, f"a=ptime:{PTIME_MS}", f"a={direction}"]


def build_answer(offer: SessionDescription, plan: AudioPlan, address: str, port: int,
                 session_id: int, version: int = 1) -> bytes:
    """Answer with one m= line per offered one (RFC 3264 6); all but our audio are refused."""
    lines = _origin(address, session_id, version)
    for index, m in enumerate(offer.media):
        if index == plan.media_index:
            lines += _audio_lines(port, plan.payload_type, plan.encoding,
                                  plan.dtmf_payload_type, _ANSWER_DIRECTION[plan.direction])
        else:
            lines.append(f"m={m.kind} 0 {m.proto} {m.formats[0]}")
    return ("\r\n".join(lines) + "\r\n").encode()


def build_offer(address: str, port: int, session_id: int, dtmf_payload_type: int = 101) -> bytes:
    """A PCMU offer (with telephone-event) as the test and demo caller sends it."""
    lines = _origin(address, session_id, 1)
    lines += _audio_lines(port, 0, "PCMU", dtmf_payload_type, "sendrecv")
    return ("\r\n".join(lines) + "\r\n").encode()
