"""SIP digest authentication (RFC 3261 22, RFC 7616, RFC 8760): both the client and the server side.

Pure and clock-free: a server nonce carries its own issue time and an HMAC of it, so a
challenge needs no stored state and expires by arithmetic on the `now` the caller passes in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ALGORITHMS", "DigestChallenge", "DigestCredentials", "DigestError", "DigestServer",
    "Verdict", "authorization_value", "choose_challenge", "digest_response", "parse_challenge",
    "parse_credentials",
]

# Hash function of each algorithm; "-sess" variants hash the session key once more (7616 3.4.2).
ALGORITHMS = {"MD5": "md5", "MD5-SESS": "md5", "SHA-256": "sha256", "SHA-256-SESS": "sha256"}
_PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")  # strongest first (RFC 8760 2.4)
_PARAM = re.compile(r'\s*([A-Za-z0-9_.!%*+`\'~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)')
_MAX_HEADER = 4096


class DigestError(ValueError):
    """A challenge or credentials header we cannot use (malformed, unknown algorithm...)."""


def _params(value: str) -> dict[str, str]:
    """`Digest a="x", b=y` -> {"a": "x", "b": "y"} (names lowercased, quotes and escapes removed)."""
    if len(value) > _MAX_HEADER:
        raise DigestError("authentication header too long")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"scheme {scheme[:20]!r} is not Digest")
    out: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise DigestError(f"bad auth-param near {rest[pos:pos + 30]!r}")
        raw = m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        out.setdefault(m.group(1).lower(), raw)
        pos = m.end()
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hash(algorithm: str, text: str) -> str:
    return hashlib.new(ALGORITHMS[algorithm], text.encode()).hexdigest()


def _algorithm(name: str | None) -> str:
    algorithm = (name or "MD5").upper()
    if algorithm not in ALGORITHMS:
        raise DigestError(f"unsupported algorithm {algorithm[:20]!r}")
    return algorithm


@dataclass(frozen=True)
class DigestChallenge:
    """A parsed WWW-Authenticate / Proxy-Authenticate: what the server wants us to hash."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> DigestChallenge:
    """Parse one Digest challenge; raises DigestError if it lacks realm/nonce or names an unknown hash."""
    p = _params(value)
    if "realm" not in p or not p.get("nonce"):
        raise DigestError("challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in p.get("qop", "").split(",") if q.strip())
    return DigestChallenge(p["realm"], p["nonce"], _algorithm(p.get("algorithm")), qop,
                           p.get("opaque"), p.get("stale", "").lower() == "true")


def choose_challenge(values: list[str]) -> DigestChallenge:
    """The strongest usable challenge among several headers (a server may offer SHA-256 and MD5)."""
    usable: list[DigestChallenge] = []
    for value in values:
        try:
            usable.append(parse_challenge(value))
        except DigestError:
            continue
    if not usable:
        raise DigestError("no usable Digest challenge")
    return min(usable, key=lambda c: _PREFERENCE.index(c.algorithm))


def digest_response(algorithm: str, username: str, realm: str, password: str, method: str,
                    uri: str, nonce: str, qop: str | None = None, nc: str = "",
                    cnonce: str = "") -> str:
    """The `response` value (RFC 7616 3.4.1); qop None is the RFC 2069 form that RFC 3261 still allows."""
    algorithm = _algorithm(algorithm)
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-SESS"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def authorization_value(challenge: DigestChallenge, username: str, password: str, method: str,
                        uri: str, *, nc: int = 1, cnonce: str | None = None) -> str:
    """An Authorization / Proxy-Authorization value answering `challenge` (qop=auth when offered)."""
    qop = "auth" if "auth" in challenge.qop else None
    if challenge.qop and qop is None:
        raise DigestError(f"only qop {','.join(challenge.qop)} offered; we do qop=auth")
    cnonce = cnonce or secrets.token_hex(8)
    nc_text = f"{nc:08x}"
    response = digest_response(challenge.algorithm, username, challenge.realm, password, method,
                               uri, challenge.nonce, qop, nc_text, cnonce)
    parts = [f"username={_quote(username)}", f"realm={_quote(challenge.realm)}",
             f"nonce={_quote(challenge.nonce)}", f"uri={_quote(uri)}",
             f"response={_quote(response)}", f"algorithm={challenge.algorithm}"]
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce)}"]
    elif challenge.algorithm.endswith("-SESS"):
        parts.append(f"cnonce={_quote(cnonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class DigestCredentials:
    """A parsed Authorization / Proxy-Authorization header (what the client claims)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str = ""
    cnonce: str = ""
    opaque: str | None = None


def parse_credentials(value: str) -> DigestCredentials:
    """Parse one Digest credentials header; raises DigestError when a required field is missing."""
    p = _params(value)
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
    if missing:
        raise DigestError(f"credentials without {', '.join(missing)}")
    qop = p.get("qop", "").lower() or None
    if qop is not None and (qop != "auth" or not p.get("cnonce") or
                            not re.fullmatch(r"[0-9a-fA-F]{8}", p.get("nc", ""))):
        raise DigestError("qop credentials need qop=auth, nc and cnonce")
    return DigestCredentials(p["username"], p["realm"], p["nonce"], p["uri"], p["response"],
                             _algorithm(p.get("algorithm")), qop, p.get("nc", ""),
                             p.get("cnonce", ""), p.get("opaque"))


class Verdict(Enum):
    """Outcome of checking credentials: accept, re-challenge with stale=true, or refuse."""

    OK = "ok"
    STALE = "stale"
    BAD = "bad"


class DigestServer:
    """Issues stateless, expiring challenges and verifies answers to them (the UAS side).

    A nonce is `<issued>.<hmac(key, issued:realm:bound)>`: nothing is stored, a forged or
    foreign nonce fails the HMAC, and an old one is answered stale=true so the client
    retries without asking its user for the password again.
    """

    def __init__(self, realm: str, *, algorithm: str = "MD5", lifetime_s: float = 300.0,
                 key: bytes | None = None) -> None:
        self.realm, self.algorithm, self.lifetime_s = realm, _algorithm(algorithm), lifetime_s
        self._key = key or secrets.token_bytes(32)
        self._opaque = hmac.new(self._key, b"opaque", "sha256").hexdigest()[:24]

    def _mac(self, issued: str, bound: str) -> str:
        msg = f"{issued}:{self.realm}:{bound}".encode()
        return hmac.new(self._key, msg, "sha256").hexdigest()[:32]

    def nonce(self, now: float, bound: str = "") -> str:
        """A fresh nonce for `now`, tied to `bound` (e.g. the client's IP address)."""
        issued = f"{int(now * 1000):x}"
        return f"{issued}.{self._mac(issued, bound)}"

    def challenge(self, now: float, bound: str = "", *, stale: bool = False) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value with qop=auth and our opaque."""
        value = (f"Digest realm={_quote(self.realm)}, nonce={_quote(self.nonce(now, bound))}, "
                 f"opaque={_quote(self._opaque)}, algorithm={self.algorithm}, qop=\"auth\"")
        return value + (", stale=true" if stale else "")

    def verify(self, creds: DigestCredentials, method: str, users: dict[str, str], now: float,
               bound: str = "") -> Verdict:
        """Check `creds` against `users` (username -> password); constant-time on the secret parts."""
        issued, _, mac = creds.nonce.partition(".")
        if (creds.realm != self.realm or creds.algorithm != self.algorithm
                or not re.fullmatch(r"[0-9a-f]{1,16}", issued)
                or not hmac.compare_digest(mac, self._mac(issued, bound))):
            return Verdict.BAD
        password = users.get(creds.username)
        expected = digest_response(creds.algorithm, creds.username, creds.realm, password or "",
                                   method, creds.uri, creds.nonce, creds.qop, creds.nc,
                                   creds.cnonce)
        right = hmac.compare_digest(expected, creds.response.lower()) and password is not None
        if not right:
            return Verdict.BAD
        age = now - int(issued, 16) / 1000
        return Verdict.OK if 0 <= age <= self.lifetime_s else Verdict.STALE
