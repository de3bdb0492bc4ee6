"""Blind transfer of a call we answered to the staff line: RFC 3515 REFER and its NOTIFYs.

The REFER goes, like every in-dialog request, to the address the INVITE came from; the
Refer-To target comes from our configuration (an IP-literal SIP URI), never from a message.
`ReferProgress` is the pure state of one transfer; `ReferTracker` wires it to futures.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from appliance.voice.sip_dialog import Dialog
from appliance.voice.sip_message import SipRequest
from appliance.voice.sip_uri import SipParseError, SipUri, Via, is_ip_literal, parse_uri

NO_ANSWER = frozenset({408, 480, 487})
BUSY = frozenset({486, 600})


class TransferOutcome(enum.Enum):
    TRANSFERRED = "transferred"  # the sipfrag reported 2xx: the caller talks to staff now
    REFUSED = "refused"  # the caller's UA rejected the REFER itself (e.g. 603, 405)
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"  # any other final sipfrag, or no dialog to transfer
    TIMED_OUT = "timed_out"  # no final answer within the transfer timeout


@dataclass(frozen=True)
class TransferResult:
    """How a transfer attempt ended; `status` is the REFER's or the sipfrag's final code."""

    outcome: TransferOutcome
    status: int | None = None

    @property
    def transferred(self) -> bool:
        return self.outcome is TransferOutcome.TRANSFERRED


def staff_uri(text: str) -> SipUri:
    """Parse a configured staff line `sip:user@IP[:port]`; a DNS name is refused (never resolved)."""
    uri = parse_uri(text.strip())
    if uri.scheme != "sip" or not uri.user or not is_ip_literal(uri.host) or uri.headers:
        raise ValueError(f"staff line {text!r} must be sip:user@IP[:port] (no DNS names)")
    return uri


def parse_sipfrag(body: bytes) -> int | None:
    """The status code of a message/sipfrag body's status line (RFC 3420), else None."""
    first = body.decode("utf-8", "replace").strip().split("\r\n", 1)[0].split("\n", 1)[0]
    parts = first.split()
    if len(parts) >= 2 and parts[0].upper().startswith("SIP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def _final(status: int) -> TransferResult:
    if 200 <= status < 300:
        return TransferResult(TransferOutcome.TRANSFERRED, status)
    if status in BUSY:
        return TransferResult(TransferOutcome.BUSY, status)
    if status in NO_ANSWER:
        return TransferResult(TransferOutcome.NO_ANSWER, status)
    return TransferResult(TransferOutcome.FAILED, status)


@dataclass
class ReferProgress:
    """One REFER: answered 202 (or refused), then NOTIFYs until a final sipfrag."""

    accepted: bool = False
    result: TransferResult | None = None

    def on_response(self, status: int) -> TransferResult | None:
        """A response to the REFER: 2xx accepts, 3xx-6xx refuse; provisional ones are ignored."""
        if self.result is None and status >= 300:
            self.result = TransferResult(TransferOutcome.REFUSED, status)
        elif status >= 200:
            self.accepted = True
        return self.result

    def on_notify(self, frag_status: int | None, terminated: bool) -> TransferResult | None:
        """A NOTIFY (Event: refer): a final sipfrag decides; a terminated one without it fails."""
        self.accepted = True  # a NOTIFY may overtake the 202 on UDP
        if self.result is None and frag_status is not None and frag_status >= 200:
            self.result = _final(frag_status)
        elif self.result is None and terminated:
            self.result = TransferResult(TransferOutcome.FAILED, frag_status)
        return self.result

    def expire(self) -> TransferResult:
        """The transfer timeout passed: whatever was heard, it has not happened."""
        if self.result is None:
            self.result = TransferResult(TransferOutcome.TIMED_OUT)
        return self.result


def refer_request(dialog: Dialog, via: Via, contact: str, target: SipUri, referred_by: str) -> SipRequest:
    """An in-dialog REFER to `target` (RFC 3515 2.4), Referred-By us (RFC 3892)."""
    request = dialog.request("REFER", via, contact)
    request.headers.add("Refer-To", f"<{target}>")
    request.headers.add("Referred-By", referred_by)
    return request


@dataclass
class _Pending:
    branch: str
    progress: ReferProgress = field(default_factory=ReferProgress)
    done: asyncio.Future[TransferResult] | None = None


class ReferTracker:
    """Transfers in flight, by our call id: routes REFER responses and NOTIFYs to them."""

    def __init__(self) -> None:
        self._by_call: dict[str, _Pending] = {}

    def start(self, call_id: str, branch: str) -> None:
        self._by_call[call_id] = _Pending(branch, done=asyncio.get_running_loop().create_future())

    def answered(self, call_id: str) -> bool:
        """True once the REFER has any final response (stops its retransmission)."""
        pending = self._by_call.get(call_id)
        return pending is None or pending.progress.accepted or pending.progress.result is not None

    def on_response(self, branch: str | None, status: int) -> bool:
        """Feed a response; True if it belonged to a REFER of ours."""
        pending = next((p for p in self._by_call.values() if p.branch == branch), None)
        if pending is None:
            return False
        self._settle(pending, pending.progress.on_response(status))
        return True

    def on_notify(self, call_id: str, request: SipRequest) -> bool:
        """Feed an in-dialog NOTIFY; False when no transfer of that call expects one (481)."""
        pending = self._by_call.get(call_id)
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if pending is None or event != "refer":
            return False
        state = (request.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
        try:
            frag = parse_sipfrag(request.body)
        except (SipParseError, ValueError):
            frag = None
        self._settle(pending, pending.progress.on_notify(frag, state == "terminated"))
        return True

    async def wait(self, call_id: str, timeout_s: float) -> TransferResult:
        """The outcome of the call's transfer, or TIMED_OUT after `timeout_s`."""
        pending = self._by_call[call_id]
        assert pending.done is not None
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), timeout_s)
        except TimeoutError:
            return pending.progress.expire()
        finally:
            self._by_call.pop(call_id, None)

    @staticmethod
    def _settle(pending: _Pending, result: TransferResult | None) -> None:
        if result is not None and pending.done is not None and not pending.done.done():
            pending.done.set_result(result)
