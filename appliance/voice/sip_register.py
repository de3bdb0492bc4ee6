"""Keeps the box registered at its ATA/PBX (RFC 3261 10): REGISTER, digest, refresh, back off, unregister.

`Registration` is a pure state machine fed `now` and responses; it returns the bytes to
send. `RegisterClient` is the thin asyncio driver that sends them from the agent's own
socket, so a registrar that rewrites Contact to our source address still reaches the agent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from appliance.voice.sip_auth import (
    DigestChallenge,
    DigestError,
    authorization_value,
    choose_challenge,
)
from appliance.voice.sip_dialog import T1, T2, Retransmit, new_branch, new_tag
from appliance.voice.sip_message import Headers, SipRequest, SipResponse
from appliance.voice.sip_uri import SipParseError, format_host, parse_name_addr, parse_uri
from sync.structured_log import fields

__all__ = ["RegState", "RegisterClient", "RegisterSettings", "Registration", "SipSocket"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
REFRESH_AT = 0.8  # of the granted expiry: leaves time for a retransmitted refresh and a challenge
MAX_CHALLENGES = 2  # a fresh challenge, then one stale=true re-challenge; more is a loop


class RegState(Enum):
    """Where the registration stands."""

    IDLE = "idle"  # not started yet
    REGISTERING = "registering"  # a REGISTER is in flight
    REGISTERED = "registered"  # bound; a refresh is due at `wakeup`
    BACKOFF = "backoff"  # the last attempt failed; retry at `wakeup`
    UNREGISTERING = "unregistering"  # Expires: 0 in flight
    STOPPED = "stopped"


@dataclass(frozen=True)
class RegisterSettings:
    """Where to register and as whom; `contact` is our address as the registrar reaches it."""

    registrar: Address
    domain: str
    user: str
    contact: Address
    auth_user: str | None = None
    password: str = ""
    expires_s: int = 3600
    t1: float = T1
    t2: float = T2
    backoff_s: float = 5.0
    max_backoff_s: float = 300.0


@dataclass
class _Pending:
    branch: str
    cseq: int
    expires: int
    data: bytes
    timer: Retransmit
    challenges: int


class Registration:
    """REGISTER client transaction and refresh schedule, with no clock and no socket."""

    def __init__(self, settings: RegisterSettings, now: float) -> None:
        self.settings = settings
        self.state = RegState.IDLE
        self.call_id = f"{secrets.token_hex(12)}@voxeron"  # one Call-ID for all refreshes (10.2.4)
        self.failures = 0
        self.registered_until: float | None = None
        self.last_status: int | None = None
        self._from_tag = new_tag()
        self._cseq = secrets.randbelow(2**16) + 1
        self._expires = settings.expires_s
        self._due = now
        self._pending: _Pending | None = None
        self._challenge: DigestChallenge | None = None
        self._auth_header = "Authorization"
        self._nc = 0

    @property
    def wakeup(self) -> float | None:
        """When `poll` next has something to do (None: only a response or `stop` can move it)."""
        if self._pending is not None:
            return self._pending.timer.wakeup
        idle = self.state in (RegState.STOPPED, RegState.UNREGISTERING)
        return None if idle else self._due

    def poll(self, now: float) -> bytes | None:
        """Timers: start, retransmit (Timer E), time out (Timer F), refresh, retry after backoff."""
        pending = self._pending
        if pending is not None:
            decision = pending.timer.poll(now)
            if decision == "resend":
                return pending.data
            if decision == "give_up":
                self._fail(now, "registrar did not answer")
            return None
        if self.state in (RegState.IDLE, RegState.REGISTERED, RegState.BACKOFF) and now >= self._due:
            return self._send(now, self._expires, challenges=0)
        return None

    def stop(self, now: float) -> bytes | None:
        """Unregister our contact (Expires: 0) if we may be bound; else just stop."""
        if self.state in (RegState.REGISTERED, RegState.REGISTERING) or self.registered_until:
            self.state = RegState.UNREGISTERING
            return self._send(now, 0, challenges=0)
        self.state, self._pending = RegState.STOPPED, None
        return None

    def on_response(self, response: SipResponse, now: float) -> bytes | None:
        """Feed a response; returns a follow-up REGISTER (an answer to a challenge), if any."""
        pending = self._pending
        if pending is None or not self._matches(response, pending) or response.status < 200:
            return None
        self._pending = None
        self.last_status = status = response.status
        unregistering = self.state is RegState.UNREGISTERING
        if 200 <= status < 300:
            if unregistering:
                self.state, self.registered_until = RegState.STOPPED, None
                return None
            granted = self._granted(response, pending.expires)
            self.state, self.failures = RegState.REGISTERED, 0
            self.registered_until = now + granted
            self._due = now + max(1.0, granted * REFRESH_AT)
            return None
        if status in (401, 407) and pending.challenges < MAX_CHALLENGES:
            header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            try:
                challenge = choose_challenge(response.headers.get_all(header))
            except DigestError as err:
                return self._fail(now, f"unusable challenge: {err}")
            if pending.challenges and not challenge.stale:
                return self._fail(now, "credentials refused")
            self._challenge, self._nc = challenge, 0
            self._auth_header = "Authorization" if status == 401 else "Proxy-Authorization"
            return self._send(now, pending.expires, challenges=pending.challenges + 1)
        if status == 423 and not unregistering:
            minimum = _int(response.headers.get("Min-Expires"))
            if minimum is not None and minimum > pending.expires:
                self._expires = minimum
                return self._send(now, minimum, challenges=pending.challenges)
        return self._fail(now, f"registrar answered {status}", _int(response.headers.get("Retry-After")))

    # -- internals ---------------------------------------------------------------------------

    def _matches(self, response: SipResponse, pending: _Pending) -> bool:
        try:
            return (response.call_id == self.call_id and response.cseq.number == pending.cseq
                    and response.cseq.method == "REGISTER"
                    and response.vias[0].branch == pending.branch)
        except SipParseError:
            return False

    def _fail(self, now: float, reason: str, retry_after: int | None = None) -> None:
        self._pending, self._challenge = None, None  # the retry starts over with a fresh nonce
        if self.state is RegState.UNREGISTERING:
            self.state = RegState.STOPPED
            return None
        self.failures += 1
        delay = min(self.settings.backoff_s * 2 ** (self.failures - 1), self.settings.max_backoff_s)
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), self.settings.max_backoff_s))
        self.state, self._due = RegState.BACKOFF, now + delay
        if self.registered_until is not None and self.registered_until <= now:
            self.registered_until = None
        log.warning("registration failed", extra=fields(reason=reason, retry_in_s=round(delay, 1),
                                                        failures=self.failures))
        return None

    def _send(self, now: float, expires: int, *, challenges: int) -> bytes:
        s = self.settings
        self._cseq += 1
        branch = new_branch()
        aor = f"sip:{s.user}@{s.domain}"
        request_uri = f"sip:{s.domain}"
        headers = Headers([
            ("Via", f"SIP/2.0/UDP {format_host(*s.contact)};branch={branch};rport"),
            ("Max-Forwards", "70"), ("From", f"<{aor}>;tag={self._from_tag}"), ("To", f"<{aor}>"),
            ("Call-ID", self.call_id), ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<sip:{s.user}@{format_host(*s.contact)}>"), ("Expires", str(expires)),
            ("User-Agent", "voxeron"),
        ])
        if self._challenge is not None:
            self._nc += 1
            headers.add(self._auth_header, authorization_value(
                self._challenge, s.auth_user or s.user, s.password, "REGISTER", request_uri,
                nc=self._nc))
        data = SipRequest("REGISTER", parse_uri(request_uri), headers).to_bytes()
        if self.state is not RegState.UNREGISTERING:
            self.state = RegState.REGISTERING
        self._pending = _Pending(branch, self._cseq, expires, data, Retransmit(now, s.t1, s.t2),
                                 challenges)
        return data

    def _granted(self, response: SipResponse, asked: int) -> int:
        """The expiry the registrar granted our contact: its Contact param, else Expires, else ours."""
        s = self.settings
        for value in response.headers.values("Contact"):
            try:
                addr = parse_name_addr(value)
            except SipParseError:
                continue
            if (addr.uri.user, addr.uri.host, addr.uri.port or 5060) == (s.user, s.contact[0], s.contact[1]):
                granted = _int(dict(addr.params).get("expires"))
                if granted is not None:
                    return granted
        granted = _int(response.headers.get("Expires"))
        return granted if granted is not None else asked


def _int(value: str | None) -> int | None:
    value = (value or "").split(";")[0].strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


class SipSocket(Protocol):
    """What the driver needs from the agent (SipAgent has it): send from its socket, hear responses."""

    response_listeners: list[Callable[[SipResponse, Address], None]]

    def send_datagram(self, data: bytes, dest: Address) -> None: ...


class RegisterClient:
    """Runs a `Registration` on an asyncio loop over the agent's socket; `stop` unregisters."""

    def __init__(self, agent: SipSocket, settings: RegisterSettings) -> None:
        self._agent = agent
        self.settings = settings
        self.machine: Registration | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # A flag as well as cancel(): on Python 3.11 wait_for can swallow a cancellation that
        # races with the wake event, and the loop would then sleep on through stop().
        self._stopping = False

    def start(self) -> None:
        """Begin registering now; responses arrive through the agent's response listeners."""
        loop = asyncio.get_running_loop()
        self.machine = Registration(self.settings, loop.time())
        self._agent.response_listeners.append(self._on_response)
        self._task = loop.create_task(self._run())

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Unregister (waits up to `timeout_s` for the registrar), then stop the timers."""
        if self.machine is None or self._task is None:
            return
        self._stopping = True
        self._wake.set()
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=1.0)
        loop = asyncio.get_running_loop()
        self._emit(self.machine.stop(loop.time()))
        deadline = loop.time() + timeout_s
        while self.machine.state is RegState.UNREGISTERING and loop.time() < deadline:
            self._wake.clear()
            wake = self.machine.wakeup
            delay = min(deadline, wake if wake is not None else deadline) - loop.time()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, delay))
            except TimeoutError:
                self._emit(self.machine.poll(loop.time()))
        self._agent.response_listeners.remove(self._on_response)

    @property
    def state(self) -> RegState:
        return self.machine.state if self.machine is not None else RegState.IDLE

    def _emit(self, data: bytes | None) -> None:
        if data is not None:
            self._agent.send_datagram(data, self.settings.registrar)

    def _on_response(self, response: SipResponse, source: Address) -> None:
        if self.machine is None or source != self.settings.registrar:
            return  # only the registrar we talk to may move the registration
        before = self.machine.state
        self._emit(self.machine.on_response(response, asyncio.get_running_loop().time()))
        if self.machine.state is not before:
            log.info("registration", extra=fields(state=self.machine.state.value,
                                                  status=self.machine.last_status))
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.machine is not None
        while not self._stopping:
            self._wake.clear()
            wake = self.machine.wakeup
            if wake is None:
                await self._wake.wait()
                continue
            if wake > loop.time():
                try:
                    await asyncio.wait_for(self._wake.wait(), wake - loop.time())
                except TimeoutError:
                    pass
                continue
            self._emit(self.machine.poll(loop.time()))
