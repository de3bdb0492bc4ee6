"""SIP state of the user agent server that needs no socket: dialogs, timers, transaction keys.

Pure: every timer decision takes `now`, so the retransmission rules of RFC 3261 are unit
tested without waiting; the agent's asyncio code only sends what these objects decide.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal
from urllib.parse import unquote

from appliance.voice.sip_message import Headers, SipRequest
from appliance.voice.sip_uri import NameAddr, SipParseError, SipUri, Via, parse_name_addr

BRANCH_COOKIE = "z9hG4bK"
T1 = 0.5
T2 = 4.0


def new_tag() -> str:
    """A From/To tag from the OS RNG (RFC 3261 19.3: at least 32 random bits)."""
    return secrets.token_hex(8)


def new_branch() -> str:
    """A Via branch with the RFC 3261 magic cookie, unique per transaction."""
    return BRANCH_COOKIE + secrets.token_hex(10)


@dataclass(frozen=True)
class CallInfo:
    """Who is calling whom; `call_id` is our canonical id (sync.ids), not the SIP Call-ID."""

    call_id: str
    sip_call_id: str
    from_uri: str
    caller: str
    to_user: str
    remote: tuple[str, int]


def caller_name(addr: NameAddr) -> str:
    """Who is calling: the From user part (an ATA puts the caller's number there), else the
    display name, else the host. The number is what an order needs for a call-back."""
    if addr.uri.user:
        return unquote(addr.uri.user)
    return addr.display or addr.uri.host


class CallPhase(Enum):
    """Where a call we answered stands, from INVITE to ended."""

    PROCEEDING = "proceeding"  # 100 sent, no final response yet
    ANSWERED = "answered"  # 200 sent, waiting for the ACK
    CONFIRMED = "confirmed"  # ACK received, handler running
    ENDING = "ending"  # our BYE sent, waiting for its response
    ENDED = "ended"


class Retransmit:
    """RFC 3261 retransmission over UDP: resend after T1, 2T1, 4T1... capped at T2; give up at 64*T1."""

    def __init__(self, now: float, t1: float = T1, t2: float = T2) -> None:
        self._interval = t1
        self._t2 = t2
        self._due = now + t1
        self.deadline = now + 64 * t1
        self.sent = 1

    @property
    def wakeup(self) -> float:
        """When `poll` next has something to decide."""
        return min(self._due, self.deadline)

    def poll(self, now: float) -> Literal["wait", "resend", "give_up"]:
        """What to do at `now`: nothing yet, send again, or stop trying."""
        if now >= self.deadline:
            return "give_up"
        if now < self._due:
            return "wait"
        self._interval = min(self._interval * 2, self._t2)
        self._due = now + self._interval
        self.sent += 1
        return "resend"


TxKey = tuple[str, ...]


def transaction_key(request: SipRequest, method: str | None = None) -> TxKey:
    """Server transaction of `request` (RFC 3261 17.2.3); an ACK belongs to its INVITE's.

    `method` overrides the request's own, so a CANCEL can find the INVITE it cancels.
    """
    via = request.vias[0]
    wanted = method or ("INVITE" if request.method == "ACK" else request.method)
    branch = via.branch or ""
    if branch.startswith(BRANCH_COOKIE):
        host, port = via.sent_by
        return (branch, host, str(port), wanted)
    # RFC 2543 peers: no unique branch, fall back to the request's identity.
    from_tag = request.from_addr.tag or ""
    return ("2543", request.call_id, str(request.cseq.number), from_tag, str(via), wanted)


@dataclass
class InviteTransaction:
    """What an INVITE was answered with, to replay on retransmission and to match its ACK."""

    key: TxKey
    last_response: bytes | None = None
    final_status: int | None = None
    final_at: float | None = None
    acked: bool = False


class ResponseCache:
    """Responses to non-INVITE requests, replayed when the request is retransmitted (17.2.2)."""

    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[TxKey, tuple[float, bytes]] = OrderedDict()

    def put(self, key: TxKey, data: bytes, now: float) -> None:
        self._entries[key] = (now + self.ttl_s, data)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: TxKey, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            self._entries.pop(key, None)
            return None
        return entry[1]


@dataclass
class Dialog:
    """Our side of a call we answered: ids, tags, route set and target of in-dialog requests.

    The remote target only fills the Request-URI; requests always go to the address the
    INVITE came from, never to a host named in a message.
    """

    call_id: str
    local: NameAddr
    remote: NameAddr
    remote_target: SipUri
    route_set: tuple[str, ...] = ()
    local_cseq: int = field(default_factory=lambda: secrets.randbelow(2**16) + 1)

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @classmethod
    def from_invite(cls, invite: SipRequest, local_tag: str) -> Dialog:
        target = invite.from_addr.uri
        contacts = invite.headers.values("Contact")
        if contacts:
            try:
                target = parse_name_addr(contacts[0]).uri
            except SipParseError:
                pass
        return cls(call_id=invite.call_id, local=invite.to_addr.with_tag(local_tag),
                   remote=invite.from_addr, remote_target=target,
                   route_set=tuple(invite.headers.values("Record-Route")))

    def matches(self, request: SipRequest) -> bool:
        """True if `request` is within this dialog (Call-ID and both tags)."""
        try:
            return (request.call_id == self.call_id and request.to_addr.tag == self.local_tag
                    and request.from_addr.tag == self.remote.tag)
        except SipParseError:
            return False

    def request(self, method: str, via: Via, contact: str) -> SipRequest:
        """A new in-dialog request (BYE...) with the next local CSeq."""
        self.local_cseq += 1
        headers = Headers([("Via", str(via)), ("Max-Forwards", "70"), ("From", str(self.local)),
                           ("To", str(self.remote)), ("Call-ID", self.call_id),
                           ("CSeq", f"{self.local_cseq} {method}"), ("Contact", contact)])
        for route in self.route_set:
            headers.add("Route", route)
        return SipRequest(method, self.remote_target, headers)
