"""SIP requests and responses (one datagram or one framed TCP message): parse, serialise, and build a response to a request.

`parse_message` is the only door for bytes from the network: whatever it is fed, it returns
a validated message or raises SipParseError (never another exception), so a stray
datagram can never take the user agent down.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from appliance.voice.sip_uri import (
    TOKEN,
    NameAddr,
    SipParseError,
    SipUri,
    Via,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_unquoted,
)

__all__ = [
    "CSeq", "Headers", "SipParseError", "SipRequest", "SipResponse", "build_response",
    "canonical_name", "parse_message", "reason_phrase", "salvage_request",
]

COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "o": "Event", "r": "Refer-To", "s": "Subject",
    "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}
_SPECIAL_CASE = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version", "rack": "RAck", "rseq": "RSeq", "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}
# Headers whose value is a comma-separated list (RFC 3261 7.3.1); others are kept whole.
LIST_HEADERS = frozenset({
    "Via", "Contact", "Route", "Record-Route", "Allow", "Supported", "Require", "Proxy-Require",
    "Unsupported", "Accept", "Accept-Encoding", "Accept-Language", "Allow-Events",
    "Content-Encoding", "In-Reply-To",
})
REASONS = {
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK",
    302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "Version Not Supported", 513: "Message Too Large",
}
_CSEQ = re.compile(r"^([0-9]{1,10})\s+(\S+)$")
_VERSION = re.compile(r"^SIP/[0-9]+\.[0-9]+$", re.I)
_DIGITS = re.compile(r"^[0-9]{1,10}$")
_SINGLE = ("Call-ID", "From", "To", "CSeq", "Max-Forwards", "Content-Type")  # RFC 3261 7.3.1


def reason_phrase(status: int) -> str:
    """The standard reason phrase of `status` (RFC 3261 21)."""
    return REASONS.get(status, "Unknown")


def canonical_name(name: str) -> str:
    """`v` -> `Via`, `call-id` -> `Call-ID`, `x-foo` -> `X-Foo` (names are case-insensitive)."""
    lower = name.strip().lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _SPECIAL_CASE.get(lower) or "-".join(p.capitalize() for p in lower.split("-"))


class Headers:
    """Ordered header fields with case-insensitive, compact-form-aware lookup."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def get(self, name: str) -> str | None:
        """The first field named `name`, whole (list headers are not split)."""
        key = canonical_name(name)
        return next((v for n, v in self._items if n == key), None)

    def get_all(self, name: str) -> list[str]:
        """Every field named `name`, whole, in order."""
        key = canonical_name(name)
        return [v for n, v in self._items if n == key]

    def values(self, name: str) -> list[str]:
        """Every value of `name`, with comma lists split for list headers (Via, Contact...)."""
        key = canonical_name(name)
        if key not in LIST_HEADERS:
            return self.get_all(key)
        out: list[str] = []
        for raw in self.get_all(key):
            out.extend(p.strip() for p in split_unquoted(raw, ",") if p.strip())
        return out

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field named `name` by one, kept at the first one's position."""
        self.set_values(name, [value])

    def set_values(self, name: str, values: list[str]) -> None:
        """Replace every field named `name` by one field per value, at the first one's position."""
        key = canonical_name(name)
        idx = next((i for i, (n, _) in enumerate(self._items) if n == key), len(self._items))
        self.remove(key)
        self._items[idx:idx] = [(key, v) for v in values]

    def remove(self, name: str) -> None:
        key = canonical_name(name)
        self._items = [(n, v) for n, v in self._items if n != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class CSeq:
    """Command sequence: orders requests in a dialog and names the method they belong to."""

    number: int
    method: str


class _Fields:
    """Typed views of the headers every SIP message carries."""

    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        value = (self.headers.get("Call-ID") or "").strip()
        if not value or any(c.isspace() for c in value):
            raise SipParseError("missing or bad Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        m = _CSEQ.match((self.headers.get("CSeq") or "").strip())
        if not m or int(m.group(1)) >= 2**31 or not TOKEN.match(m.group(2)):
            raise SipParseError("missing or bad CSeq")
        return CSeq(int(m.group(1)), m.group(2))

    @property
    def from_addr(self) -> NameAddr:
        return parse_name_addr(self._required("From"))

    @property
    def to_addr(self) -> NameAddr:
        return parse_name_addr(self._required("To"))

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.values("Via")]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name}")
        return value

    def _serialise(self, start: str) -> bytes:
        lines = [start]
        lines += [f"{n}: {v}" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class SipRequest(_Fields):
    """A SIP request; `to_bytes` always writes a correct Content-Length."""

    method: str
    uri: SipUri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return self._serialise(f"{self.method} {self.uri} SIP/2.0")


@dataclass
class SipResponse(_Fields):
    """A SIP response; `to_bytes` always writes a correct Content-Length."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return self._serialise(f"SIP/2.0 {self.status} {self.reason}")


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one datagram; anything malformed raises SipParseError and nothing else."""
    try:
        return _parse(data)
    except SipParseError:
        raise
    except (ValueError, IndexError, KeyError, TypeError) as exc:  # translated at the boundary
        raise SipParseError(f"malformed message: {exc}") from exc


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: ignore CRLFs before the start line
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = data.find(sep)
        if idx >= 0:
            return data[:idx], data[idx + len(sep) :]
    return data, b""


def _unfold(text: str) -> list[str]:
    """Logical lines: a line starting with SP/HTAB continues the previous one (RFC 3261 7.3.1)."""
    lines: list[str] = []
    for line in re.split(r"\r?\n", text):
        if line[:1] in (" ", "\t"):
            if len(lines) < 2:
                raise SipParseError("continuation line without a header")
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


def _header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    name = name.rstrip(" \t")
    if not sep or not TOKEN.match(name):
        raise SipParseError(f"bad header line {line[:60]!r}")
    return name, value.strip(" \t")


def _parse(data: bytes) -> SipRequest | SipResponse:
    head, body = _split_head(data)
    if not head.strip():
        raise SipParseError("empty message")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header section is not UTF-8") from exc
    if "\x00" in text or "\r" in text.replace("\r\n", ""):
        raise SipParseError("control characters in the header section")
    start, *lines = _unfold(text)
    headers = Headers(_header(line) for line in lines)
    body = _framed_body(headers, body)
    if start[:4].upper() == "SIP/":
        message: SipRequest | SipResponse = _status_line(start, headers, body)
    else:
        message = _request_line(start, headers, body)
    _validate(message)
    return message


def _framed_body(headers: Headers, body: bytes) -> bytes:
    lengths = {v.strip() for v in headers.get_all("Content-Length")}
    if not lengths:
        return body  # UDP: the datagram ends the message
    if len(lengths) > 1:
        raise SipParseError("conflicting Content-Length headers")
    value = lengths.pop()
    if not _DIGITS.match(value):
        raise SipParseError(f"bad Content-Length {value[:20]!r}")
    if int(value) > len(body):
        raise SipParseError(f"body shorter ({len(body)}) than Content-Length ({value})")
    return body[: int(value)]  # RFC 3261 18.3: extra octets in a datagram are discarded


def _status_line(start: str, headers: Headers, body: bytes) -> SipResponse:
    parts = start.split(None, 2)
    if len(parts) < 2 or parts[0].upper() != "SIP/2.0":
        raise SipParseError(f"bad status line {start[:80]!r}")
    if not re.fullmatch(r"[1-6][0-9]{2}", parts[1]):
        raise SipParseError(f"bad status code {parts[1][:10]!r}")
    return SipResponse(int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers, body)


def _request_line(start: str, headers: Headers, body: bytes) -> SipRequest:
    parts = start.split(" ")
    if len(parts) != 3 or not TOKEN.match(parts[0]):
        raise SipParseError(f"bad request line {start[:80]!r}")
    method, uri_text, version = parts
    if not _VERSION.match(version):
        raise SipParseError(f"bad SIP version {version[:20]!r}")
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported SIP version {version[:20]!r}", status=505)
    return SipRequest(method, parse_uri(uri_text), headers, body)


def _validate(message: SipRequest | SipResponse) -> None:
    """Every message needs Via, From, To, Call-ID and CSeq that parse (RFC 3261 8.1.1)."""
    if not message.vias:
        raise SipParseError("missing Via")
    for name in _SINGLE:
        if len(message.headers.get_all(name)) > 1:
            raise SipParseError(f"more than one {name} header")
    _ = message.from_addr, message.to_addr, message.call_id
    cseq = message.cseq
    if isinstance(message, SipRequest):
        if cseq.method != message.method:
            raise SipParseError(f"CSeq method {cseq.method!r} differs from {message.method!r}")
        forwards = message.headers.get("Max-Forwards")
        if forwards is not None and not _DIGITS.match(forwards.strip()):
            raise SipParseError("bad Max-Forwards")


def salvage_request(data: bytes) -> tuple[str, Headers] | None:
    """Method and headers of an invalid request, if enough survives to address a 400 to it.

    Needs a request line and a readable top Via; returns None otherwise (the datagram is
    dropped). Best effort by design: it never raises.
    """
    try:
        head, _ = _split_head(data)
        lines = re.split(r"\r?\n", head.decode("utf-8", errors="replace"))
        parts = lines[0].split()
        if len(parts) < 3 or not TOKEN.match(parts[0]) or not parts[-1].upper().startswith("SIP/"):
            return None
        headers = Headers()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep and TOKEN.match(name.strip()):
                headers.add(name.strip(), value.strip())
        vias = headers.values("Via")
        if not vias:
            return None
        parse_via(vias[0])
        return parts[0], headers
    except (SipParseError, ValueError, IndexError):
        return None


def build_response(
    request: SipRequest | Headers,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """A response that copies Via(s), From, To, Call-ID and CSeq, adding our To tag if missing."""
    source = request.headers if isinstance(request, SipRequest) else request
    headers = Headers(("Via", v) for v in source.get_all("Via"))
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = source.get(name)
        if value is not None:
            headers.add(name, value)
    to = source.get("To")
    if to_tag and status > 100 and to is not None:
        try:
            addr = parse_name_addr(to)
        except SipParseError:
            addr = None
        if addr is not None and addr.tag is None:
            headers.set("To", f"{to};tag={to_tag}")
    for name, value in extra:
        headers.add(name, value)
    return SipResponse(status, reason or reason_phrase(status), headers, body)
