"""SIP URIs, name-addr values (From, To, Contact) and Via values (RFC 3261 sections 19, 20).

Strict enough to refuse garbage with SipParseError, lenient where real phones differ (case,
whitespace around separators). Nothing here resolves or contacts a host named in a message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

Params = tuple[tuple[str, str | None], ...]

TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_NOT_IN_URI = set(' \t\r\n<>"')
_VIA = re.compile(
    r"^([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([^\s/]+)\s+"
    r"(\[[^\]]*\](?:\s*:\s*[0-9]+)?|[^;:\s\[]+(?:\s*:\s*[0-9]+)?)\s*(;.*)?$",
    re.S,
)


class SipParseError(ValueError):
    """Input that is not valid SIP; `status` is the response a server should answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def split_unquoted(text: str, sep: str) -> list[str]:
    """Split at `sep` outside quoted strings and <...>, as header lists and parameters need."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    angle = 0
    for ch in text:
        if quoted:
            buf.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif ch == sep and angle == 0:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if quoted:
        raise SipParseError("unterminated quoted string")
    parts.append("".join(buf))
    return parts


def parse_params(parts: list[str]) -> Params:
    """`name[=value]` items (already split at ';'); names are lower-cased, values kept."""
    out: list[tuple[str, str | None]] = []
    for part in parts:
        name, sep, value = part.partition("=")
        name = name.strip()
        if not TOKEN.match(name):
            raise SipParseError(f"bad parameter {part.strip()!r}")
        if not sep:
            out.append((name.lower(), None))
            continue
        value = value.strip()
        quoted = value.startswith('"')
        if not value or (quoted and (len(value) < 2 or not value.endswith('"'))):
            raise SipParseError(f"bad parameter value in {part.strip()!r}")
        if not quoted and any(c in value for c in ' \t"<>'):
            raise SipParseError(f"bad parameter value in {part.strip()!r}")
        out.append((name.lower(), value))
    return tuple(out)


def format_params(params: Params) -> str:
    """`;name=value;flag` as written on the wire."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: Params, name: str) -> str | None:
    for k, v in params:
        if k == name:
            return v
    return None


def _has(params: Params, name: str) -> bool:
    return any(k == name for k, _ in params)


def parse_hostport(text: str) -> tuple[str, int | None]:
    """`host[:port]` with IPv4, [IPv6] or a host name; the host is returned without brackets."""
    text = re.sub(r"\s*:\s*", ":", text.strip())
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise SipParseError(f"bad IPv6 address {host!r}") from exc
        if rest and not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference in {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_raw = text.partition(":")
        port_text = port_text_raw if sep else None
        if not _HOSTNAME.match(host):
            raise SipParseError(f"bad host {host!r}")
    port = None
    if port_text is not None:
        if not _PORT.match(port_text) or int(port_text) > 65535:
            raise SipParseError(f"bad port in {text!r}")
        port = int(port_text)
    return host.lower(), port


def format_host(host: str, port: int | None) -> str:
    """host[:port], with IPv6 hosts in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def is_ip_literal(host: str) -> bool:
    """True for an IPv4/IPv6 literal; used to refuse anything that would need name resolution."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SipUri:
    """A sip: or sips: URI; `user` keeps its %-escapes as written."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: Params = ()
    headers: str = ""

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        tail = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{format_host(self.host, self.port)}{format_params(self.params)}{tail}"


def parse_uri(text: str) -> SipUri:
    """Parse a sip:/sips: URI; any other scheme raises SipParseError with status 416."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME.match(scheme):
        raise SipParseError(f"not a URI: {text[:80]!r}")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        raise SipParseError(f"unsupported URI scheme {scheme!r}", status=416)
    if not rest or any(c in _NOT_IN_URI for c in rest):
        raise SipParseError(f"bad characters in URI {text[:80]!r}")
    user = password = None
    if "@" in rest:
        userinfo, rest = rest.split("@", 1)
        user, has_pw, pw = userinfo.partition(":")
        password = pw if has_pw else None
        if not user:
            raise SipParseError(f"empty user in URI {text[:80]!r}")
    hostpart, _, headers = rest.partition("?")
    hostport, *raw_params = hostpart.split(";")
    host, port = parse_hostport(hostport)
    return SipUri(host=host, user=user, port=port, scheme=scheme, password=password,
                  params=parse_params(raw_params), headers=headers)


def _find_unquoted(text: str, ch: str) -> int:
    quoted = escaped = False
    for i, c in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ch:
            return i
    return -1


def _closing_quote(text: str) -> int:
    """Index of the quote that closes the quoted string opening `text`, or -1."""
    escaped = False
    for i in range(1, len(text)):
        if escaped:
            escaped = False
        elif text[i] == "\\":
            escaped = True
        elif text[i] == '"':
            return i
    return -1


def _display_name(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if text.startswith('"'):
        if _closing_quote(text) != len(text) - 1:
            raise SipParseError(f"bad display name {text[:60]!r}")
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)
    if '"' in text:
        raise SipParseError(f"bad display name {text[:60]!r}")
    return " ".join(text.split())


@dataclass(frozen=True)
class NameAddr:
    """From/To/Contact value: optional display name, URI and header parameters (tag...)."""

    uri: SipUri
    display: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return _param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k != "tag")
        return replace(self, params=(*kept, ("tag", tag)))

    def __str__(self) -> str:
        shown = ""
        if self.display:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            shown = f'"{escaped}" '
        return f"{shown}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(text: str) -> NameAddr:
    """`"Name" <sip:u@h>;tag=x` or a bare `sip:u@h;tag=x` (whose ;params belong to the header)."""
    text = text.strip()
    if not text:
        raise SipParseError("empty address")
    lt = _find_unquoted(text, "<")
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"unterminated <...> in {text[:80]!r}")
        display = _display_name(text[:lt])
        uri = parse_uri(text[lt + 1 : gt])
        tail = text[gt + 1 :].strip()
    else:
        uri_text, sep, rest = text.partition(";")
        display, uri, tail = None, parse_uri(uri_text), (sep + rest).strip()
    if tail and not tail.startswith(";"):
        raise SipParseError(f"junk after address in {text[:80]!r}")
    params = parse_params(split_unquoted(tail[1:], ";")) if tail else ()
    return NameAddr(uri=uri, display=display, params=params)


@dataclass(frozen=True)
class Via:
    """One Via hop: transport, sent-by and parameters (branch, rport, received)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        return self.host, self.port or 5060

    def with_received(self, ip: str, port: int) -> Via:
        """Record where the request really came from (RFC 3261 18.2.1, RFC 3581 rport)."""
        params = list(self.params)
        if _has(self.params, "rport"):
            params = [(k, str(port) if k == "rport" else v) for k, v in params]
        if self.host != ip or _has(self.params, "rport"):
            params = [(k, v) for k, v in params if k != "received"] + [("received", ip)]
        return replace(self, params=tuple(params))

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {format_host(self.host, self.port)}{format_params(self.params)}"


def parse_via(text: str) -> Via:
    """One Via value (`SIP/2.0/UDP host:port;branch=...`); lists must be split first."""
    m = _VIA.match(text.strip())
    if not m:
        raise SipParseError(f"bad Via {text.strip()[:80]!r}")
    name, version, transport, sent_by, tail = m.groups()
    if name.upper() != "SIP" or version != "2.0" or not TOKEN.match(transport):
        raise SipParseError(f"bad Via protocol in {text.strip()[:80]!r}")
    host, port = parse_hostport(sent_by)
    params = parse_params(split_unquoted(tail[1:], ";")) if tail else ()
    return Via(transport=transport.upper(), host=host, port=port, params=params)
