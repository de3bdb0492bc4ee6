"""Human fallback over real SIP on 127.0.0.1: the caller asks for a person, the box REFERs
the call to the configured staff line, or promises a callback when the REFER is refused.

The test phone plays the transferee (RFC 3515): it answers the REFER (202 + NOTIFY sipfrag,
or 603) itself. The staff URI points at a socket of the test that must stay silent: the box
never contacts the REFER target itself.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np

from appliance.dialog.order_tools import BoxTools
from appliance.store import LocalStore
from appliance.voice.asr_whisper import Transcript
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.callbacks import CallbackScheduler
from appliance.voice.dtmf import ToneEvent
from appliance.voice.rtp import RtpPacket
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.sip_message import SipRequest, SipResponse, build_response
from appliance.voice.sip_refer import TransferOutcome, staff_uri
from blueprints.engine import compose_builtin
from tests.integration.sip_phone import Phone, answered_call, eventually, run, tone, udp
from voxeron.caller_script import frame_dbfs

LINES = ["a large pepperoni pizza", "can I talk to a real person please"]


class ShortTts:
    def load(self) -> None:
        return None

    def sentences(self, text: str) -> Iterator[np.ndarray]:
        yield tone(0.4, hz=300.0, level=6000.0)


class ScriptedAsr:
    def __init__(self) -> None:
        self.lines = list(LINES)

    def transcribe(self, audio: np.ndarray, hints: str = "") -> Transcript:
        return Transcript(text=self.lines.pop(0) if self.lines else "", confidence=0.9, audio_ms=800)


def notify(phone: Phone, ok: SipResponse, frag: str, cseq: int) -> bytes:
    body = f"{frag}\r\n".encode()
    state = "active;expires=60" if " 1" in frag[:10] else "terminated;reason=noresource"
    return (f"NOTIFY sip:order@127.0.0.1:{phone.agent[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{phone.port};rport;branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:5551234@127.0.0.1>;tag=phone1\r\n"
            f"To: {ok.headers.get('To')}\r\nCall-ID: {phone.call_id}\r\nCSeq: {cseq} NOTIFY\r\n"
            f"Contact: <sip:5551234@127.0.0.1:{phone.port}>\r\nEvent: refer\r\n"
            f"Subscription-State: {state}\r\n"
            f"Content-Type: message/sipfrag\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def next_request(phone: Phone, method: str, seen: list[SipResponse],
                       timeout: float = 10.0) -> SipRequest:
    while True:
        msg = await phone.recv(timeout)
        if isinstance(msg, SipRequest) and msg.method == method:
            return msg
        if isinstance(msg, SipResponse):
            seen.append(msg)


def call_with_handover(tmp_path: Path, on_refer: str) -> tuple[LocalStore, BoxTools, CallSession, CallbackScheduler]:
    """Order a pizza, ask for a person, answer the box's REFER per `on_refer` ("accept"/"603")."""
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    store = LocalStore(tmp_path / "box.sqlite3")
    tools = BoxTools(store, bp, "ten_r", "dev_r")
    staff = udp()  # the staff line: only the transferee may contact it, never the box
    staff_port = staff.getsockname()[1]
    callbacks = CallbackScheduler()
    deps = VoiceDeps(blueprint=bp, asr=ScriptedAsr(), tts=ShortTts(), store=store, tools=tools,  # type: ignore[arg-type]
                     tenant_id="ten_r", device_id="dev_r", callbacks=callbacks,
                     staff_uri=staff_uri(f"sip:staff@127.0.0.1:{staff_port}"), transfer_timeout_s=5.0)
    sessions: list[CallSession] = []

    async def handler(call: CallInfo, media: MediaChannel) -> None:
        sessions.append(CallSession(deps, call, media))
        await sessions[0].run()

    async def scenario(agent: SipAgent) -> None:
        deps.transfer = agent.transfer
        callbacks.start()
        phone, ours, ok = await answered_call(agent.port)
        loop = asyncio.get_running_loop()
        heard: list[float] = []

        async def hear() -> None:
            async for frame in ours.frames():
                if frame_dbfs(frame) > -40:
                    heard.append(loop.time())

        listener = asyncio.create_task(hear())
        for _ in LINES:  # speak each line once the agent has spoken and gone quiet
            assert await eventually(lambda: bool(heard) and loop.time() - heard[-1] > 0.3, timeout=5)
            mark = len(heard)
            await ours.play(tone(1.0, hz=500.0, level=12000.0))
            assert await eventually(lambda: len(heard) > mark, timeout=5)  # noqa: B023
        seen: list[SipResponse] = []
        refer = await next_request(phone, "REFER", seen)
        assert refer.headers.get("Refer-To") == f"<sip:staff@127.0.0.1:{staff_port}>"
        assert refer.headers.get("Referred-By") and refer.to_addr.tag == "phone1"
        assert refer.from_addr.tag == ok.to_addr.tag and refer.call_id == phone.call_id
        if on_refer == "accept":
            phone.send(build_response(refer, 202).to_bytes())
            phone.send(notify(phone, ok, "SIP/2.0 100 Trying", 2))
            phone.send(notify(phone, ok, "SIP/2.0 200 OK", 3))
        else:
            phone.send(build_response(refer, 603).to_bytes())
        bye = await next_request(phone, "BYE", seen)
        notified = [r.status for r in seen if r.cseq.method == "NOTIFY"]
        assert notified == ([200, 200] if on_refer == "accept" else [])
        phone.send(build_response(bye, 200).to_bytes())
        assert await eventually(lambda: agent.active_calls == 0)
        staff.setblocking(False)
        try:
            assert staff.recv(65535) is None  # pragma: no cover - must raise: nothing arrived
        except BlockingIOError:
            pass
        listener.cancel()
        ours.close()
        phone.close()
        staff.close()
        callbacks.stop()

    run(scenario, handler, timeout=30, t1=0.1)
    return store, tools, sessions[0], callbacks


def test_accepted_refer_transfers_the_call_with_a_warm_summary(tmp_path: Path) -> None:
    store, tools, session, callbacks = call_with_handover(tmp_path, "accept")
    assert session.transfer_result is not None and session.transfer_result.transferred
    [fu] = tools.book.follow_ups()
    assert fu.kind == "transfer" and fu.reason == "caller asked for a person"
    assert LINES[1] in fu.summary["heard"] and "pepperoni" in fu.summary["heard"]
    assert session.handover is not None and session.handover.heard == LINES
    assert callbacks.due == []
    agent = [t.text for t in store.turns(session.call.call_id) if t.speaker == "agent"]
    assert not any("call you back in about" in t for t in agent)
    store.close()


def test_refused_refer_schedules_a_callback_and_says_when(tmp_path: Path) -> None:
    store, tools, session, _ = call_with_handover(tmp_path, "603")
    assert session.transfer_result is not None
    assert session.transfer_result.outcome is TransferOutcome.REFUSED and session.transfer_result.status == 603
    [fu] = tools.book.follow_ups()
    assert fu.kind == "callback" and fu.summary["transfer"] == "refused" and fu.phone == "5551234"
    assert fu.not_before is not None
    assert timedelta(minutes=14) < fu.not_before - fu.created_at <= timedelta(minutes=15)
    agent = [t.text for t in store.turns(session.call.call_id) if t.speaker == "agent"]
    assert agent[-1] == "A member of our staff will call you back in about 15 minutes."
    store.close()


def test_pressing_0_transfers_to_staff_through_the_same_handover(tmp_path: Path) -> None:
    """RFC 4733 "0" from the caller's RTP: REFER to the staff line at once, with a summary."""
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    store = LocalStore(tmp_path / "box.sqlite3")
    tools = BoxTools(store, bp, "ten_k", "dev_k")
    staff_port = 5098  # nothing listens: the box never contacts the Refer-To target itself
    deps = VoiceDeps(blueprint=bp, asr=ScriptedAsr(), tts=ShortTts(), store=store, tools=tools,  # type: ignore[arg-type]
                     tenant_id="ten_k", device_id="dev_k",
                     staff_uri=staff_uri(f"sip:staff@127.0.0.1:{staff_port}"), transfer_timeout_s=5.0)
    sessions: list[CallSession] = []

    async def handler(call: CallInfo, media: MediaChannel) -> None:
        session = CallSession(deps, call, media)
        media.on_dtmf(session.on_dtmf)  # as voxeron-voice wires it
        sessions.append(session)
        await session.run()

    async def scenario(agent: SipAgent) -> None:
        deps.transfer = agent.transfer
        phone, ours, ok = await answered_call(agent.port)
        media = ours.peer.destination
        assert media is not None
        for i, end in enumerate([False, False, True, True, True]):  # key 0, end sent 3 times
            event = ToneEvent(0, end, 10, 160 * (i + 1)).to_bytes()
            ours._transport.sendto(RtpPacket(101, 40000 + i, 123456, 0xABC, event, i == 0).to_bytes(), media)  # type: ignore[union-attr]
        seen: list[SipResponse] = []
        refer = await next_request(phone, "REFER", seen)
        assert refer.headers.get("Refer-To") == f"<sip:staff@127.0.0.1:{staff_port}>"
        phone.send(build_response(refer, 202).to_bytes())
        phone.send(notify(phone, ok, "SIP/2.0 200 OK", 2))
        bye = await next_request(phone, "BYE", seen)
        phone.send(build_response(bye, 200).to_bytes())
        assert await eventually(lambda: agent.active_calls == 0)
        ours.close()
        phone.close()

    run(scenario, handler, timeout=30, t1=0.1)
    [session] = sessions
    assert session.transfer_result is not None and session.transfer_result.transferred
    [fu] = tools.book.follow_ups()
    assert fu.kind == "transfer" and fu.reason == "caller pressed 0 for staff"
    store.close()
