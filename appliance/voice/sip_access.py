"""Who may call the box: trusted source networks (the ATA, the trunk), or callers that pass digest auth.

Pure: a decision depends only on the request, its source IP and the `now` passed in. The
source is the datagram's address, never a host named in the message (Via, Contact, From).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance.voice.sip_auth import DigestError, DigestServer, Verdict, parse_credentials
from appliance.voice.sip_message import SipRequest

__all__ = ["LOOPBACK", "Admit", "Challenge", "Forbid", "InboundAccess", "parse_networks"]

LOOPBACK = ("127.0.0.0/8", "::1/128")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Admit:
    """Let the request through; `user` is the authenticated username, or None for a trusted source."""

    user: str | None = None


@dataclass(frozen=True)
class Challenge:
    """Answer 401 with this WWW-Authenticate value."""

    header: str


@dataclass(frozen=True)
class Forbid:
    """Answer 403: untrusted source with no way in, or credentials that are wrong."""

    reason: str


AccessDecision = Admit | Challenge | Forbid


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """`["192.168.1.0/24", "10.0.0.7"]` -> networks; raises ValueError naming the bad entry."""
    out: list[Network] = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as err:
            raise ValueError(f"not an IP network: {cidr!r} ({err})") from err
    return tuple(out)


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return addr


class InboundAccess:
    """Gate for new calls: trusted networks pass, others must answer a digest challenge.

    With no `users`, an untrusted source is refused outright (403) rather than challenged
    for credentials nobody could have. Nonces are bound to the caller's IP address.
    """

    def __init__(self, allow_from: Iterable[str] = LOOPBACK, users: Mapping[str, str] | None = None,
                 *, realm: str = "voxeron", algorithm: str = "MD5",
                 nonce_lifetime_s: float = 300.0) -> None:
        self.networks = parse_networks(allow_from)
        self.users = dict(users or {})
        self.server = DigestServer(realm, algorithm=algorithm, lifetime_s=nonce_lifetime_s)

    @classmethod
    def open(cls) -> InboundAccess:
        """Anyone may call (the behaviour before access control existed)."""
        return cls(("0.0.0.0/0", "::/0"))

    def trusted(self, ip: str) -> bool:
        """True if `ip` lies in one of the allowed networks."""
        addr = _address(ip)
        return addr is not None and any(addr.version == n.version and addr in n for n in self.networks)

    def check(self, request: SipRequest, source_ip: str, now: float) -> AccessDecision:
        """Admit, challenge or forbid a new request arriving from `source_ip`."""
        if self.trusted(source_ip):
            return Admit()
        if not self.users:
            return Forbid("source not in allow_from")
        creds, error = None, None
        for value in request.headers.get_all("Authorization"):
            try:
                parsed = parse_credentials(value)
            except DigestError as err:
                error = err
                continue
            if parsed.realm == self.server.realm:
                creds = parsed
                break
        if creds is None:
            if error is not None:
                return Forbid(f"unusable credentials: {error}")
            return Challenge(self.server.challenge(now, source_ip))
        verdict = self.server.verify(creds, request.method, self.users, now, source_ip)
        if verdict is Verdict.OK:
            return Admit(creds.username)
        if verdict is Verdict.STALE:
            return Challenge(self.server.challenge(now, source_ip, stale=True))
        return Forbid("wrong credentials")
