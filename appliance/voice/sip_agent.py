"""The box's SIP user agent server over UDP (and TCP): answers calls, hands each to a handler.

Responses go to the datagram's source address (RFC 3261 18.2.2, rport-style) or back on
the TCP connection the request came on, and media to what RtpPeer allows; no host named
in a message is ever resolved or contacted. Every failure is answered or logged, and the
agent keeps serving. What can change mid-call (re-INVITE, UPDATE, INFO, session timers)
is in sip_midcall.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol
from urllib.parse import unquote

import numpy as np

from appliance.voice.call_rate import CallRateWindow
from appliance.voice.g711 import codec_for
from appliance.voice.rtp import RtpEndpoint, RtpPeer
from appliance.voice.sdp import (
    AudioPlan,
    SdpError,
    SessionDescription,
    build_answer,
    negotiate_audio,
    parse_sdp,
)
from appliance.voice.session_timer import MIN_SE, SessionTimer, TimerTerms
from appliance.voice.sip_access import Challenge, Forbid, InboundAccess
from appliance.voice.sip_dialog import (
    T1,
    T2,
    CallInfo,
    CallPhase,
    Dialog,
    InviteTransaction,
    caller_name,
    new_branch,
    new_tag,
    transaction_key,
)
from appliance.voice.sip_message import SipRequest, SipResponse
from appliance.voice.sip_midcall import CallLeg, MidCallRequests, Refusal
from appliance.voice.sip_refer import ReferTracker, TransferOutcome, TransferResult, refer_request
from appliance.voice.sip_tcp import TcpSource
from appliance.voice.sip_transaction import (
    Address,
    advertised_address,
    warning_header,
)
from appliance.voice.sip_uri import SipUri, format_host
from appliance.voice.sip_uri import Via as ViaHop
from sync.ids import new_id
from sync.structured_log import fields, log_context

__all__ = ["CallHandler", "CallInfo", "MediaChannel", "SipAgent", "TransferResult"]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, UPDATE, INFO"
NOT_ALLOWED = frozenset({"REGISTER", "SUBSCRIBE", "MESSAGE", "PRACK", "REFER", "PUBLISH"})
SUPPORTED = frozenset({"timer"})


class MediaChannel(Protocol):
    """A call's audio as the handler sees it (RtpEndpoint implements it; fakes may too)."""

    @property
    def closed(self) -> asyncio.Event:
        """Set when the call has ended (either side hung up)."""
        ...

    @property
    def playing(self) -> bool:
        """True while queued agent audio remains to be sent."""
        ...

    def frames(self) -> AsyncIterator[np.ndarray]:
        """Caller audio: int16 8 kHz frames of 160 samples in order; ends with the call."""
        ...

    async def play(self, pcm: np.ndarray) -> None:
        """Queue int16 8 kHz audio; returns once it has been sent or stopped."""
        ...

    def stop_playback(self) -> None:
        """Drop all queued audio at once (barge-in)."""
        ...

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent (or stopped)."""
        ...

    def on_dtmf(self, listener: Callable[[str], None]) -> None:
        """Call `listener` with each key the caller presses (RFC 4733 events or SIP INFO)."""
        ...

    def close(self) -> None:
        """End the media from our side; the call is hung up when the handler returns."""
        ...


CallHandler = Callable[[CallInfo, MediaChannel], Awaitable[None]]
ResponseListener = Callable[[SipResponse, tuple[str, int]], None]


class SipAgent(MidCallRequests):
    """SIP user agent server: one handler task per established call, at most `max_calls`.

    `t1`/`t2` are the RFC 3261 timers (tests shorten them); `answer_after_s` rings (180)
    that long before answering, which gives a caller time to CANCEL. `access` gates new
    calls by source address or digest auth (None: anyone may call, as before). `tcp` adds
    a TCP listener on the same port. Past `max_calls` a call gets 486 Busy Here, or 302 to
    `overflow_uri` (the staff line) when set. `min_se` is our session-timer floor (422);
    a call on hold longer than `hold_timeout_s` is hung up. `calls_per_min` returns the
    tenant's quota in force (None: unlimited), read at each INVITE; a call past it in the
    last rolling minute is refused like one past `max_calls`.
    """

    def __init__(self, host: str, port: int, users: list[str], handler: CallHandler,
                 rtp_host: str = "0.0.0.0", max_calls: int = 2, *, t1: float = T1, t2: float = T2,
                 answer_after_s: float = 0.0, stop_grace_s: float = 2.0,
                 access: InboundAccess | None = None, tcp: bool = False,
                 overflow_uri: SipUri | None = None, min_se: int = MIN_SE,
                 hold_timeout_s: float = 300.0,
                 calls_per_min: Callable[[], int | None] | None = None) -> None:
        super().__init__(host, port, t1=t1, t2=t2, tcp=tcp)
        self.access = access
        self.response_listeners: list[ResponseListener] = []
        self.users, self.rtp_host, self.max_calls = list(users), rtp_host, max_calls
        self.overflow_uri, self.min_se, self.hold_timeout_s = overflow_uri, min_se, hold_timeout_s
        self._handler = handler
        self._answer_after_s, self._stop_grace_s = answer_after_s, stop_grace_s
        self._calls: dict[tuple[str, str], CallLeg] = {}
        self._byes: dict[str, CallLeg] = {}
        self._updates: dict[str, CallLeg] = {}
        self._refers = ReferTracker()
        self._calls_per_min = calls_per_min
        self._rate = CallRateWindow()

    @property
    def active_calls(self) -> int:
        """Calls counted against `max_calls`: from INVITE until the BYE is done and the handler returned."""
        return len(self._calls)

    async def stop(self) -> None:
        """Hang up every call (BYE), give handlers `stop_grace_s` to finish, close the socket."""
        for call in list(self._calls.values()):
            if call.phase in (CallPhase.ANSWERED, CallPhase.CONFIRMED):
                self._hang_up(call, "agent stopping")
            elif call.phase is CallPhase.PROCEEDING:
                self._final(call.tx, call.invite, call.remote, 503, call.dialog.local_tag)
                self._end(call, "agent stopping")
        handlers = [c.handler_task for c in self._calls.values()
                    if c.handler_task is not None and not c.handler_task.done()]
        if handlers:
            await asyncio.wait(handlers, timeout=self._stop_grace_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(1.0, 4 * self._t1)
        while any(c.phase is CallPhase.ENDING for c in self._calls.values()) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await self._close()
        for call in self._calls.values():
            if call.media is not None:
                call.media.close()
        self._calls.clear()

    # -- requests ------------------------------------------------------------------------

    def _on_request(self, request: SipRequest, source: Address) -> None:
        route = {"INVITE": self._on_invite, "ACK": self._on_ack, "BYE": self._on_bye,
                 "CANCEL": self._on_cancel, "OPTIONS": self._on_options,
                 "NOTIFY": self._on_notify, "UPDATE": self._on_update,
                 "INFO": self._on_info}.get(request.method)
        unknown = [r for r in request.headers.values("Require") if r.lower() not in SUPPORTED]
        if unknown and request.method not in ("INVITE", "ACK", "CANCEL"):  # RFC 3261 8.2.2.3
            self._reply(request, source, 420, extra=[("Unsupported", ", ".join(unknown))])
        elif route is not None:
            route(request, source)
        elif request.method in NOT_ALLOWED:
            self._reply(request, source, 405, extra=[("Allow", ALLOW)])
        else:
            self._reply(request, source, 501)

    def _on_options(self, request: SipRequest, source: Address) -> None:
        self._reply(request, source, 200, extra=[("Allow", ALLOW), ("Accept", "application/sdp"),
                                                 ("Supported", ", ".join(sorted(SUPPORTED)))])

    def _on_invite(self, request: SipRequest, source: Address) -> None:
        key = transaction_key(request)
        known = self._invites.get(key)
        if known is not None:
            if known.last_response is not None:
                self._send(known.last_response, source)  # retransmission: answer from the transaction
            return
        if request.to_addr.tag is not None:
            self._on_reinvite(request, source, key)
            return
        tx = self._invites[key] = InviteTransaction(key)
        call_id = new_id("call")  # minted first so a refusal is logged under its own id too
        with log_context(call_id=call_id):
            screened = self._screen(request, source)
            if isinstance(screened, Refusal):
                log.info("call refused", extra=fields(
                    status=screened.status, reason=screened.reason, sip_call_id=request.call_id,
                    source=format_host(*source)))
                self._final(tx, request, source, screened.status, extra=screened.extra)
                return
        offer, plan, terms = screened
        self._rate.admit(self._now())
        local_tag = new_tag()
        info = CallInfo(call_id=call_id, sip_call_id=request.call_id,
                        from_uri=str(request.from_addr.uri), caller=caller_name(request.from_addr),
                        to_user=unquote(request.uri.user or ""), remote=source)
        call = CallLeg(info, request, tx, Dialog.from_invite(request, local_tag), offer, plan)
        if terms is not None:
            call.timer = SessionTimer(terms, self._now())
            call.peer_timer_support = "timer" in {v.lower() for v in request.headers.values("Supported")}
        self._calls[(request.call_id, local_tag)] = call
        tx.last_response = self._reply(request, source, 100)
        with log_context(call_id=info.call_id):
            log.info("incoming call", extra=fields(sip_call_id=info.sip_call_id, caller=info.caller,
                                                   to_user=info.to_user, codec=plan.encoding,
                                                   remote=format_host(*source)))
            self._spawn(self._answer(call))

    def _screen(self, request: SipRequest, source: Address
                ) -> Refusal | tuple[SessionDescription, AudioPlan, TimerTerms | None]:
        """The offer, chosen codec and session-timer terms of an INVITE we can take, else
        why we refuse it."""
        decision = self.access.check(request, source[0], self._now()) if self.access else None
        if isinstance(decision, Challenge):
            return Refusal(401, "digest authentication required", (("WWW-Authenticate", decision.header),))
        if isinstance(decision, Forbid):
            return Refusal(403, decision.reason)
        user = unquote(request.uri.user or "")
        if user not in self.users:
            return Refusal(404, f"unknown user {user[:40]!r}")
        unknown = [r for r in request.headers.values("Require") if r.lower() not in SUPPORTED]
        if unknown:  # INVITE: checked after the gate and the user, like before
            return Refusal(420, "unsupported extension", (("Unsupported", ", ".join(unknown)),))
        accept = {a.split(";")[0].strip().lower() for a in request.headers.values("Accept")}
        if accept and not accept & {"application/sdp", "application/*", "*/*"}:
            return Refusal(406, "caller does not accept SDP", (("Accept", "application/sdp"),))
        if len(self._calls) >= self.max_calls:
            return self._overflow("max_calls reached")
        limit = self._calls_per_min() if self._calls_per_min is not None else None
        if not self._rate.allows(self._now(), limit):
            log.warning("call over the tenant's rate", extra=fields(
                reason="calls_per_min", calls_per_min=limit, sip_call_id=request.call_id))
            return self._overflow(f"calls_per_min {limit} reached")
        terms = self.negotiate_timer(request)
        if isinstance(terms, Refusal):
            return terms
        if not request.body:
            return Refusal(488, "no SDP offer", (warning_header("an SDP offer is required"),))
        if request.content_type != "application/sdp":
            return Refusal(415, f"body is {request.content_type}", (("Accept", "application/sdp"),))
        try:
            offer = parse_sdp(request.body)
            return offer, negotiate_audio(offer), terms
        except SdpError as err:
            return Refusal(488, str(err), (warning_header(str(err)),))

    def _overflow(self, reason: str) -> Refusal:
        """A call we have no room for: 302 to the staff line when set, else 486 Busy Here."""
        if self.overflow_uri is not None:
            return Refusal(302, f"{reason}: sent to the staff line",
                           (("Contact", f"<{self.overflow_uri}>"),))
        return Refusal(486, reason)

    def _on_ack(self, request: SipRequest, source: Address) -> None:
        tx = self._invites.get(transaction_key(request))
        if tx is not None and tx.final_status is not None and tx.final_status >= 300:
            tx.acked = True  # ACK of a rejection: ends its retransmissions
            return
        call = self._dialog_call(request)
        if call is None or self.on_reinvite_ack(call, request) or call.phase is not CallPhase.ANSWERED:
            return
        call.phase = CallPhase.CONFIRMED
        with log_context(call_id=call.info.call_id):
            log.info("call established")
            call.handler_task = self._spawn(self._run_handler(call))
            self.watch_session(call)

    def _on_bye(self, request: SipRequest, source: Address) -> None:
        call = self._dialog_call(request)
        if call is None:
            self._reply(request, source, 481)
            return
        self._reply(request, source, 200)
        self._end(call, "caller hung up")

    def _on_cancel(self, request: SipRequest, source: Address) -> None:
        tx = self._invites.get(transaction_key(request, method="INVITE"))
        if tx is None:
            self._reply(request, source, 481)
            return
        call = next((c for c in self._calls.values() if c.tx is tx), None)
        tag = call.dialog.local_tag if call is not None else None
        self._reply(request, source, 200, tag)
        if call is not None and call.phase is CallPhase.PROCEEDING:
            self._final(tx, call.invite, call.remote, 487, tag)
            self._end(call, "cancelled by caller")

    def _on_notify(self, request: SipRequest, source: Address) -> None:
        """NOTIFY of a REFER we sent (sipfrag progress); 481 for anything else (RFC 6665)."""
        call = self._dialog_call(request)
        known = call is not None and self._refers.on_notify(call.info.call_id, request)
        self._reply(request, source, 200 if known else 481)

    async def transfer(self, call_id: str, target: SipUri, timeout_s: float) -> TransferResult:
        """Blind-transfer a call to `target` (from our config) by REFER to the caller's source."""
        call = next((c for c in self._calls.values() if c.info.call_id == call_id
                     and c.phase is CallPhase.CONFIRMED), None)
        if call is None:
            return TransferResult(TransferOutcome.FAILED)
        local = advertised_address(self.host, call.remote[0])
        via = ViaHop(self.via_transport(call.remote), local, self.port,
                     (("branch", new_branch()), ("rport", None)))
        data = refer_request(call.dialog, via, self._contact(call), target, self._contact(call)).to_bytes()
        self._refers.start(call_id, via.branch or "")
        self._send(data, call.remote)
        self._spawn(self._retransmit(data, call.remote, lambda: not self._refers.answered(call_id), None))
        with log_context(call_id=call_id):
            log.info("transferring call", extra=fields(target=str(target)))
            result = await self._refers.wait(call_id, timeout_s)
            log.info("transfer ended", extra=fields(outcome=result.outcome.value, status=result.status))
        return result

    def _on_response(self, response: SipResponse, source: Address) -> None:
        branch = response.vias[0].branch
        if response.cseq.method == "REFER" and self._refers.on_response(branch, response.status):
            return
        if self._on_refresh_response(response):
            return
        call = self._byes.get(branch or "")
        if call is not None and response.status >= 200 and response.cseq.method == "BYE":
            self._end(call, f"BYE answered with {response.status}")
        elif call is None:
            for listener in self.response_listeners:  # e.g. the REGISTER client on our socket
                listener(response, source)

    def _dialog_call(self, request: SipRequest) -> CallLeg | None:
        call = self._calls.get((request.call_id, request.to_addr.tag or ""))
        return call if call is not None and call.dialog.matches(request) else None

    # -- call lifecycle ------------------------------------------------------------------

    async def _answer(self, call: CallLeg) -> None:
        try:
            peer = RtpPeer(call.plan.remote_address, call.plan.remote_port, call.remote[0])
            codec = codec_for(call.plan.encoding, call.plan.payload_type)
            call.media = await RtpEndpoint.open(self.rtp_host, codec, peer,
                                                dtmf_payload_type=call.plan.dtmf_payload_type)
            if call.phase is CallPhase.PROCEEDING and self._answer_after_s > 0:
                call.tx.last_response = self._reply(call.invite, call.remote, 180,
                                                    call.dialog.local_tag)
                await asyncio.sleep(self._answer_after_s)
            if call.phase is not CallPhase.PROCEEDING:
                call.media.close()  # cancelled while we were getting ready
                return
            address = advertised_address(self.rtp_host, call.remote[0])
            call.answer_sdp = build_answer(call.offer, call.plan, address, call.media.local_port,
                                           session_id=call.session_id)
            data = self._reply(call.invite, call.remote, 200, call.dialog.local_tag,
                               extra=[*self._ok_headers(call), *self.timer_headers(call)],
                               body=call.answer_sdp)
        except Exception:
            log.exception("answering the call failed")
            if call.phase is CallPhase.PROCEEDING:
                self._final(call.tx, call.invite, call.remote, 500, call.dialog.local_tag)
                self._end(call, "answer failed")
            return
        call.tx.last_response, call.tx.final_status, call.tx.final_at = data, 200, self._now()
        call.phase = CallPhase.ANSWERED
        log.info("call answered", extra=fields(rtp_port=call.media.local_port,
                                               rtp_peer=str(call.media.peer.destination)))
        self._spawn(self._retransmit(data, call.remote, lambda: call.phase is CallPhase.ANSWERED,
                                     lambda: self._hang_up(call, "no ACK for 200 OK")))

    def _ok_headers(self, call: CallLeg) -> list[tuple[str, str]]:
        return [("Contact", self._contact(call)), ("Allow", ALLOW),
                ("Supported", ", ".join(sorted(SUPPORTED))), ("Content-Type", "application/sdp")]

    def _contact(self, call: CallLeg) -> str:
        user = call.info.to_user if re.fullmatch(r"[A-Za-z0-9._+-]+", call.info.to_user) else "voxeron"
        host = format_host(advertised_address(self.host, call.remote[0]), self.port)
        transport = ";transport=tcp" if isinstance(call.remote, TcpSource) else ""
        return f"<sip:{user}@{host}{transport}>"

    async def _run_handler(self, call: CallLeg) -> None:
        assert call.media is not None
        try:
            await self._handler(call.info, call.media)
        except Exception:
            log.exception("call handler failed")
        finally:
            call.handler_done = True
            if call.phase is CallPhase.CONFIRMED:
                self._hang_up(call, "handler finished")
            self._forget_if_done(call)

    def _hang_up(self, call: CallLeg, reason: str) -> None:
        """Send BYE (retransmitted until answered or 64*T1) and close the media."""
        with log_context(call_id=call.info.call_id):
            call.phase = CallPhase.ENDING
            if call.media is not None:
                call.media.close()
            local = advertised_address(self.host, call.remote[0])
            via = ViaHop(self.via_transport(call.remote), local, self.port,
                         (("branch", new_branch()), ("rport", None)))
            data = call.dialog.request("BYE", via, self._contact(call)).to_bytes()
            call.bye_branch = via.branch
            self._byes[via.branch or ""] = call
            self._send(data, call.remote)
            log.info("hanging up", extra=fields(reason=reason))
            self._spawn(self._retransmit(data, call.remote, lambda: call.phase is CallPhase.ENDING,
                                         lambda: self._end(call, "BYE unanswered")))

    def _end(self, call: CallLeg, reason: str) -> None:
        if call.phase is CallPhase.ENDED:
            return
        call.phase = CallPhase.ENDED
        if call.timer_task is not None:
            call.timer_task.cancel()
        if call.media is not None:
            call.media.close()
        if call.bye_branch is not None:
            self._byes.pop(call.bye_branch, None)
        with log_context(call_id=call.info.call_id):
            rtp = call.media.stats if call.media is not None else None
            log.info("call ended", extra=fields(
                reason=reason, rtp_in=rtp and rtp.packets_in, rtp_out=rtp and rtp.packets_out,
                rtp_lost=rtp and rtp.jitter.lost, rtp_late=rtp and rtp.jitter.late))
        self._forget_if_done(call)

    def _forget_if_done(self, call: CallLeg) -> None:
        if call.phase is CallPhase.ENDED and (call.handler_task is None or call.handler_done):
            self._calls.pop((call.info.sip_call_id, call.dialog.local_tag), None)
