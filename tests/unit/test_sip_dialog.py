"""Pure SIP state: RFC 3261 retransmission schedule, transaction keys, response cache, dialogs."""

from __future__ import annotations

from appliance.voice.sip_dialog import (
    CallInfo,
    Dialog,
    ResponseCache,
    Retransmit,
    caller_name,
    new_branch,
    transaction_key,
)
from appliance.voice.sip_message import SipRequest, parse_message
from appliance.voice.sip_uri import Via, parse_name_addr


def request(method: str = "INVITE", branch: str = "z9hG4bKabc", cseq: int = 1, to_tag: str = "") -> SipRequest:
    to = "<sip:order@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    msg = parse_message(
        f"{method} sip:order@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
        f"From: <sip:5551234@127.0.0.1>;tag=ft\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: {cseq} {method}\r\n"
        "Contact: <sip:5551234@127.0.0.1:5070>\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\r\n".encode())
    assert isinstance(msg, SipRequest)
    return msg


def test_retransmit_doubles_to_t2_and_gives_up_at_64_t1() -> None:
    schedule = Retransmit(0.0, t1=0.5, t2=4.0)
    resends: list[float] = []
    now = 0.0
    while (decision := schedule.poll(now)) != "give_up":
        if decision == "resend":
            resends.append(now)
        now = schedule.wakeup
    gaps = [round(b - a, 3) for a, b in zip([0.0, *resends], resends, strict=False)]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]  # T1, 2T1, 4T1, then capped at T2
    assert now == 32.0 and schedule.sent == len(resends) + 1


def test_transaction_keys_match_retransmissions_acks_and_cancels() -> None:
    invite = request()
    assert transaction_key(invite) == transaction_key(request())
    assert transaction_key(request("ACK")) == transaction_key(invite)  # ACK of a non-2xx
    assert transaction_key(request("CANCEL"), method="INVITE") == transaction_key(invite)
    assert transaction_key(request("CANCEL")) != transaction_key(invite)
    assert transaction_key(request(branch="z9hG4bKother")) != transaction_key(invite)
    legacy = transaction_key(request(branch="1234"))
    assert legacy[0] == "2543" and legacy != transaction_key(request(branch="1234", cseq=2))


def test_response_cache_expires() -> None:
    cache = ResponseCache(ttl_s=32.0, max_entries=2)
    cache.put(("a",), b"A", now=0.0)
    assert cache.get(("a",), now=31.9) == b"A" and cache.get(("a",), now=32.0) is None
    for key in ("b", "c", "d"):
        cache.put((key,), key.encode(), now=0.0)
    assert cache.get(("b",), 1.0) is None and cache.get(("d",), 1.0) == b"d"  # oldest evicted


def test_dialog_from_invite_builds_bye_for_the_caller() -> None:
    dialog = Dialog.from_invite(request(), local_tag="ours")
    assert dialog.matches(request("BYE", to_tag="ours", cseq=2))
    assert not dialog.matches(request("BYE", to_tag="someone-else", cseq=2))
    via = Via("UDP", "127.0.0.1", 5060, (("branch", new_branch()),))
    start = dialog.local_cseq
    bye = dialog.request("BYE", via, "<sip:order@127.0.0.1:5060>")
    again = parse_message(bye.to_bytes())
    assert isinstance(again, SipRequest) and again.method == "BYE"
    assert str(again.uri) == "sip:5551234@127.0.0.1:5070"  # the caller's Contact
    assert again.from_addr.tag == "ours" and again.to_addr.tag == "ft"
    assert again.cseq.number == start + 1 and again.headers.values("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert again.vias[0].branch is not None and again.vias[0].branch.startswith("z9hG4bK")


def test_caller_name_prefers_the_number() -> None:
    assert caller_name(parse_name_addr('"sipp caller" <sip:5551234@h>')) == "5551234"
    assert caller_name(parse_name_addr('"Front desk" <sip:h>')) == "Front desk"
    assert caller_name(parse_name_addr("<sip:%2B4930@h>")) == "+4930"
    info = CallInfo("call_x", "c1", "sip:5551234@h", "5551234", "order", ("127.0.0.1", 5070))
    assert info.remote == ("127.0.0.1", 5070)
