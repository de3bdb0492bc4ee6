"""What can change while a call is up: re-INVITE and UPDATE (hold, resume, new media
address, session refresh), INFO (DTMF relay), and the session timer (RFC 4028).

A mixin of the SIP agent: it keeps the agent's file about setting calls up and tearing
them down. Every change is applied to the call's RTP endpoint; a re-offer we cannot take
is refused (488) and the call goes on with the media it had.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field, replace

from appliance.voice.dtmf import parse_info
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
from appliance.voice.session_timer import MIN_SE, SessionTimer, TimerTerms, TooSmall, negotiate
from appliance.voice.sip_dialog import (
    CallInfo,
    CallPhase,
    Dialog,
    InviteTransaction,
    TxKey,
    new_branch,
)
from appliance.voice.sip_message import SipRequest, SipResponse
from appliance.voice.sip_transaction import (
    Address,
    SipTransactionLayer,
    advertised_address,
    warning_header,
)
from appliance.voice.sip_uri import Via as ViaHop
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)

_HOLD_ADDRESSES = ("0.0.0.0", "::")


@dataclass(frozen=True)
class Refusal:
    """A request we answer with a final error, and why."""

    status: int
    reason: str
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(eq=False)
class CallLeg:
    """One call the agent answered: its SIP state, negotiated media and timers."""

    info: CallInfo
    invite: SipRequest
    tx: InviteTransaction
    dialog: Dialog
    offer: SessionDescription
    plan: AudioPlan
    phase: CallPhase = CallPhase.PROCEEDING
    media: RtpEndpoint | None = None
    answer_sdp: bytes | None = None
    handler_task: asyncio.Task[None] | None = None
    handler_done: bool = False
    bye_branch: str | None = None
    session_id: int = field(default_factory=lambda: secrets.randbelow(2**31))
    sdp_version: int = 1
    timer: SessionTimer | None = None
    timer_task: asyncio.Task[None] | None = None
    peer_timer_support: bool = False
    holds: int = 0  # hold/resume changes so far
    reinvite_ack: int | None = None  # CSeq of a re-INVITE whose 200 awaits its ACK

    @property
    def remote(self) -> Address:
        return self.info.remote

    @property
    def up(self) -> bool:
        return self.phase in (CallPhase.ANSWERED, CallPhase.CONFIRMED)


def held(plan: AudioPlan) -> bool:
    """The caller put us on hold: it will not receive (sendonly/inactive, or c=0.0.0.0)."""
    return plan.direction in ("sendonly", "inactive") or plan.remote_address in _HOLD_ADDRESSES


class MidCallRequests(SipTransactionLayer):
    """re-INVITE, UPDATE, INFO and session timers for the calls of a SipAgent."""

    min_se: int = MIN_SE
    hold_timeout_s: float = 300.0
    rtp_host: str
    _updates: dict[str, CallLeg]

    # -- provided by the agent -------------------------------------------------------------

    def _dialog_call(self, request: SipRequest) -> CallLeg | None:
        raise NotImplementedError

    def _hang_up(self, call: CallLeg, reason: str) -> None:
        raise NotImplementedError

    def _contact(self, call: CallLeg) -> str:
        raise NotImplementedError

    def _ok_headers(self, call: CallLeg) -> list[tuple[str, str]]:
        raise NotImplementedError

    # -- requests --------------------------------------------------------------------------

    def _on_reinvite(self, request: SipRequest, source: Address, key: TxKey) -> None:
        """Hold, resume, new media address or session refresh: apply it, answer the session."""
        call = self._dialog_call(request)
        if call is None or call.answer_sdp is None or not call.up:
            self._reply(request, source, 481)
            return
        tx = self._invites[key] = InviteTransaction(key)
        refusal = self._apply(call, request)
        if refusal is not None:
            self._final(tx, request, source, refusal.status, extra=refusal.extra)
            return
        data = self._reply(request, source, 200, extra=[*self._ok_headers(call), *self.timer_headers(call)],
                           body=call.answer_sdp)
        tx.last_response, tx.final_status, tx.final_at = data, 200, self._now()
        cseq = call.reinvite_ack = request.cseq.number  # the 200 is resent until its ACK
        self._spawn(self._retransmit(data, source, lambda: call.reinvite_ack == cseq and call.up,
                                     lambda: self._hang_up(call, "no ACK for re-INVITE 200")))

    def on_reinvite_ack(self, call: CallLeg, request: SipRequest) -> bool:
        """True if `request` is the ACK of the re-INVITE 200 we are resending."""
        if call.reinvite_ack is not None and request.cseq.number == call.reinvite_ack:
            call.reinvite_ack = None
            return True
        return False

    def _on_update(self, request: SipRequest, source: Address) -> None:
        """UPDATE (RFC 3311): the same changes as a re-INVITE, without the ACK."""
        call = self._dialog_call(request)
        if call is None or call.answer_sdp is None or not call.up:
            self._reply(request, source, 481)
            return
        refusal = self._apply(call, request)
        if refusal is not None:
            self._reply(request, source, refusal.status, extra=refusal.extra)
            return
        extra = [("Contact", self._contact(call)), ("Supported", "timer"), *self.timer_headers(call)]
        if request.body:
            extra.append(("Content-Type", "application/sdp"))
        self._reply(request, source, 200, extra=extra, body=call.answer_sdp if request.body else b"")

    def _on_info(self, request: SipRequest, source: Address) -> None:
        """INFO with application/dtmf-relay or application/dtmf: a key press (legacy RFC 6086)."""
        call = self._dialog_call(request)
        if call is None:
            self._reply(request, source, 481)
            return
        digit = parse_info(request.content_type, request.body)
        if digit is None and request.body:
            self._reply(request, source, 415, extra=[("Accept", "application/dtmf-relay, application/dtmf")])
            return
        self._reply(request, source, 200)
        if digit is not None and call.media is not None:
            with log_context(call_id=call.info.call_id):
                call.media.deliver_dtmf(digit.symbol)

    # -- session changes -------------------------------------------------------------------

    def negotiate_timer(self, request: SipRequest) -> TimerTerms | Refusal | None:
        """Session-timer terms of an INVITE or refresh, or the 422/400 that refuses it."""
        try:
            return negotiate(request.headers, self.min_se)
        except TooSmall as err:
            return Refusal(422, str(err), (("Min-SE", str(err.min_se)),))
        except ValueError as err:
            return Refusal(400, str(err), (warning_header(str(err)),))

    def timer_headers(self, call: CallLeg) -> list[tuple[str, str]]:
        """Session-Expires (and Require: timer when the caller supports it) for a 2xx."""
        if call.timer is None:
            return []
        out = [("Session-Expires", call.timer.terms.header())]
        return [*out, ("Require", "timer")] if call.peer_timer_support else out

    def _apply(self, call: CallLeg, request: SipRequest) -> Refusal | None:
        terms = self.negotiate_timer(request)
        if isinstance(terms, Refusal):
            return terms
        if request.body:
            if request.content_type != "application/sdp":
                return Refusal(415, f"body is {request.content_type}", (("Accept", "application/sdp"),))
            try:
                offer = parse_sdp(request.body)
                plan = negotiate_audio(offer)
            except SdpError as err:
                return Refusal(488, str(err), (warning_header(str(err)),))
            self._apply_media(call, offer, plan)
        if call.timer is not None:  # any re-INVITE or UPDATE refreshes the session
            call.timer.refresh(terms or call.timer.terms, self._now())
        elif terms is not None:
            call.timer = SessionTimer(terms, self._now())
            self.watch_session(call)
        return None

    def _apply_media(self, call: CallLeg, offer: SessionDescription, plan: AudioPlan) -> None:
        """Adopt a re-offer: codec, DTMF type, where RTP goes, hold; answer it."""
        on_hold = held(plan)
        if on_hold and plan.direction == "sendrecv":
            plan = replace(plan, direction="sendonly")  # c=0.0.0.0 (RFC 2543 hold)
        media = call.media
        if media is not None:
            if (plan.encoding, plan.payload_type) != (call.plan.encoding, call.plan.payload_type):
                media.codec = codec_for(plan.encoding, plan.payload_type)
            media.dtmf_payload_type = plan.dtmf_payload_type
            moved = (plan.remote_address, plan.remote_port) != (call.plan.remote_address, call.plan.remote_port)
            if moved and plan.remote_address not in _HOLD_ADDRESSES:
                media.set_peer(RtpPeer(plan.remote_address, plan.remote_port, call.remote[0]))
            if on_hold != media.held:
                with log_context(call_id=call.info.call_id):
                    log.info("call held" if on_hold else "call resumed",
                             extra=fields(direction=plan.direction))
                call.holds += 1
                if on_hold:
                    self._spawn(self._hold_watchdog(call, call.holds))
            media.hold(on_hold)
        call.offer, call.plan = offer, plan
        port = media.local_port if media is not None else 0
        address = advertised_address(self.rtp_host, call.remote[0])
        same = build_answer(offer, plan, address, port, call.session_id, call.sdp_version)
        if same != call.answer_sdp:
            call.sdp_version += 1
            call.answer_sdp = build_answer(offer, plan, address, port, call.session_id, call.sdp_version)

    async def _hold_watchdog(self, call: CallLeg, hold: int) -> None:
        """A caller that never comes back from hold would keep a line busy: hang up."""
        await asyncio.sleep(self.hold_timeout_s)
        if call.up and call.holds == hold and call.media is not None and call.media.held:
            self._hang_up(call, "on hold too long")

    # -- session timer ---------------------------------------------------------------------

    def watch_session(self, call: CallLeg) -> None:
        """Run the call's session timer: refresh it when we are the refresher, else end the
        call with BYE when the caller lets it lapse."""
        if call.timer is not None and call.timer_task is None:
            call.timer_task = self._spawn(self._run_timer(call))

    async def _run_timer(self, call: CallLeg) -> None:
        while call.up and call.timer is not None:
            await asyncio.sleep(max(0.0, call.timer.due - self._now()))
            if not call.up or call.timer is None:
                return
            decision = call.timer.poll(self._now())
            if decision == "expire":
                self._hang_up(call, "session timer expired")
                return
            if decision == "refresh":
                call.timer.refresh(call.timer.terms, self._now())
                self._send_refresh(call)

    def _send_refresh(self, call: CallLeg) -> None:
        """A session refresh by UPDATE without a body (RFC 4028 7.4); no answer -> hang up."""
        assert call.timer is not None
        local = advertised_address(self.host, call.remote[0])
        via = ViaHop(self.via_transport(call.remote), local, self.port,
                     (("branch", new_branch()), ("rport", None)))
        request = call.dialog.request("UPDATE", via, self._contact(call))
        request.headers.add("Session-Expires", call.timer.terms.header())
        request.headers.add("Supported", "timer")
        data = request.to_bytes()
        branch = via.branch or ""
        self._updates[branch] = call
        self._send(data, call.remote)
        with log_context(call_id=call.info.call_id):
            log.info("refreshing session", extra=fields(interval_s=call.timer.terms.interval_s))

        def unanswered() -> None:
            self._updates.pop(branch, None)
            self._hang_up(call, "session refresh unanswered")

        self._spawn(self._retransmit(data, call.remote, lambda: branch in self._updates and call.up,
                                     unanswered))

    def _on_refresh_response(self, response: SipResponse) -> bool:
        """The answer to our refresh UPDATE; True if it was one."""
        call = self._updates.get(response.vias[0].branch or "")
        if call is None or response.cseq.method != "UPDATE":
            return False
        if response.status < 200:
            return True
        del self._updates[response.vias[0].branch or ""]
        with log_context(call_id=call.info.call_id):
            if response.status in (408, 481):
                self._hang_up(call, f"session refresh answered {response.status}")
            elif response.status >= 300:
                log.warning("session refresh refused; timer stopped", extra=fields(status=response.status))
                call.timer = None
        return True
