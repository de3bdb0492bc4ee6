"""A scripted SIP caller for the demo, `voxeron call` and tests: dials, talks, measures.

It sends only to the target given by the user (an IP literal or localhost; no name from a
message is ever resolved), streams RTP like a phone (silence between lines, so the box can
latch), and reports voice-to-voice latency as the caller hears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from appliance.voice.g711 import codec_for
from appliance.voice.rtp import RtpEndpoint, RtpPeer
from appliance.voice.sdp import SdpError, build_offer, negotiate_audio, parse_sdp
from appliance.voice.sip_dialog import Retransmit, new_branch, new_tag
from appliance.voice.sip_message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    build_response,
    parse_message,
)
from appliance.voice.sip_uri import NameAddr, SipUri, is_ip_literal, parse_name_addr, parse_uri
from voxeron.caller_script import AgentQuiet, AgentSpeaks, CallerScript, CallTurn, HangUp, Speak
from voxeron.caller_voices import CallerVoice, write_wav

Address = tuple[str, int]
OnEvent = Callable[[str, str, float], None]


class CallReport(BaseModel):
    """What happened on one call, from the caller's side."""

    call_id: str  # the SIP Call-ID
    target: str
    status_code: int  # final response to the INVITE (408 if none came)
    reason: str
    turns: list[CallTurn] = []
    greeting_ms: float = 0.0  # agent audio before the caller's first line
    duration_s: float = 0.0
    agent_hung_up: bool = False
    hangup_reason: str = ""
    wav_path: str | None = None


def target_address(uri: SipUri) -> Address:
    """Where to send: the URI's host must be an IP literal or localhost (never resolved)."""
    host = "127.0.0.1" if uri.host == "localhost" else uri.host
    if not is_ip_literal(host):
        raise ValueError(f"target host must be an IP literal or localhost, not {uri.host!r}")
    return host, uri.port or 5060


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[SipRequest | SipResponse, Address]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        with contextlib.suppress(SipParseError):
            self.queue.put_nowait((parse_message(data), (str(addr[0]), int(addr[1]))))


class _Recording:
    """Received agent audio on the call's timeline (gaps where the agent sent nothing)."""

    def __init__(self, t0: float) -> None:
        self.t0, self.samples = t0, 0
        self.parts: list[np.ndarray] = []

    def add(self, frame: np.ndarray, at: float) -> None:
        gap = int((at - self.t0) * 8000) - len(frame) - self.samples
        if gap > 0:
            self.parts.append(np.zeros(gap, dtype=np.int16))
            self.samples += gap
        self.parts.append(frame)
        self.samples += len(frame)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int16)


class SipLeg:
    """The SIP side of one outgoing call (a minimal UAC)."""

    def __init__(self, uri: SipUri, target: Address, local_host: str, t1: float,
                 caller_id: str) -> None:
        self.uri, self.target, self.local_host, self.t1 = uri, target, local_host, t1
        self.call_id = f"{secrets.token_hex(12)}@{local_host}"
        self.local = NameAddr(parse_uri(f"sip:{caller_id}@{local_host}"), "Voxeron caller",
                              (("tag", new_tag()),))
        self.remote: NameAddr = NameAddr(uri)
        self.remote_target: SipUri = uri
        self.cseq = 1  # of the latest in-dialog request we sent
        self.transport: asyncio.DatagramTransport | None = None
        self.inbox = _Inbox()
        self.agent_bye = asyncio.Event()
        self.bye_answered = asyncio.Event()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self.inbox, local_addr=(self.local_host, 0))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def request(self, method: str, branch: str, body: bytes = b"") -> SipRequest:
        uri = self.uri if method == "INVITE" else self.remote_target
        cseq = 1 if method in ("INVITE", "ACK") else self.cseq  # an ACK repeats the INVITE's
        headers = Headers([
            ("Via", f"SIP/2.0/UDP {self.local_host}:{self.port};branch={branch};rport"),
            ("Max-Forwards", "70"), ("From", str(self.local)), ("To", str(self.remote)),
            ("Call-ID", self.call_id), ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:{self.local.uri.user}@{self.local_host}:{self.port}>"),
        ])
        if body:
            headers.add("Content-Type", "application/sdp")
        return SipRequest(method, uri, headers, body)

    def send(self, message: SipRequest | SipResponse, dest: Address | None = None) -> None:
        assert self.transport is not None
        self.transport.sendto(message.to_bytes(), dest or self.target)

    async def invite(self, offer: bytes, deadline: float, on_event: OnEvent) -> tuple[SipResponse | None, Address]:
        """Send INVITE (retransmitted until a response) and return the final response."""
        loop = asyncio.get_running_loop()
        branch = new_branch()
        invite = self.request("INVITE", branch, offer)
        self.send(invite)
        schedule: Retransmit | None = Retransmit(loop.time(), self.t1)
        while loop.time() < deadline:
            wake = min(deadline, schedule.wakeup if schedule else deadline)
            try:
                message, source = await asyncio.wait_for(self.inbox.queue.get(), max(0.0, wake - loop.time()))
            except TimeoutError:
                decision = schedule.poll(loop.time()) if schedule else "wait"
                if decision == "resend":
                    self.send(invite)
                elif decision == "give_up":
                    return None, self.target
                continue
            if not isinstance(message, SipResponse) or message.call_id != self.call_id:
                continue
            if message.cseq.method != "INVITE":
                continue
            if message.status < 200:
                schedule = None  # provisional: stop retransmitting, wait for the final answer
                if message.status == 180:
                    on_event("ringing", "", time.monotonic())
                continue
            self.remote = message.to_addr
            if message.status >= 300:  # ACK for a non-2xx uses the INVITE's branch
                ack = self.request("ACK", branch)
                self.send(ack)
            return message, source
        return None, self.target

    def ack(self, ok: SipResponse) -> None:
        contacts = ok.headers.values("Contact")
        if contacts:
            with contextlib.suppress(SipParseError):
                self.remote_target = parse_name_addr(contacts[0]).uri
        self.send(self.request("ACK", new_branch()))

    async def serve(self) -> None:
        """During the call: re-ACK a retransmitted 200 and answer the agent's BYE."""
        while True:
            message, source = await self.inbox.queue.get()
            if isinstance(message, SipResponse):
                if message.status == 200 and message.cseq.method == "INVITE":
                    self.send(self.request("ACK", new_branch()))
                elif message.cseq.method == "BYE" and message.status >= 200:
                    self.bye_answered.set()
                continue
            if message.method == "ACK":
                continue
            status = 200 if message.method in ("BYE", "OPTIONS") else 501
            self.send(build_response(message, status), source)  # to the packet's source
            if message.method == "BYE" and message.call_id == self.call_id:
                self.agent_bye.set()

    async def bye(self) -> None:
        """Hang up: BYE, retransmitted until answered (at most ~4 s)."""
        loop = asyncio.get_running_loop()
        self.cseq += 1
        bye = self.request("BYE", new_branch())
        self.send(bye)
        schedule, deadline = Retransmit(loop.time(), self.t1), loop.time() + 4.0
        while not self.bye_answered.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.bye_answered.wait(), max(0.0, schedule.wakeup - loop.time()))
            if not self.bye_answered.is_set() and schedule.poll(loop.time()) == "resend":
                self.send(bye)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Lines:
    """Synthesises the script in the background, in order, so each line is ready when due."""

    def __init__(self, tts: CallerVoice, lines: list[str]) -> None:
        loop = asyncio.get_running_loop()
        self._futures: list[asyncio.Future[np.ndarray]] = [loop.create_future() for _ in lines]
        self._task = asyncio.create_task(self._run(tts, lines))

    async def _run(self, tts: CallerVoice, lines: list[str]) -> None:
        for text, future in zip(lines, self._futures, strict=True):
            try:
                pcm = np.asarray(await asyncio.to_thread(tts.synthesize, text))
                if pcm.dtype != np.int16 or pcm.ndim != 1:
                    raise TypeError(f"tts must return 1-D int16 audio, got {pcm.dtype} {pcm.shape}")
                future.set_result(pcm)
            except Exception as exc:
                future.set_exception(exc)

    async def get(self, index: int) -> np.ndarray:
        return await self._futures[index]

    def close(self) -> None:
        self._task.cancel()
        for future in self._futures:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" noise on early hang-up


async def place_call(target_uri: str, lines: list[str], *, local_host: str = "127.0.0.1",
                     tts: CallerVoice, on_event: OnEvent | None = None, max_call_s: float = 120.0,
                     wav_path: Path | str | None = None, caller_id: str = "5550100",
                     t1: float = 0.5, quiet_s: float = 0.7, give_up_s: float = 8.0) -> CallReport:
    """Call `target_uri`, say `lines` one per agent turn, hang up, and report what happened.

    `on_event(kind, text, t)` gets ringing, answered, agent_speaks, agent_quiet, caller_says,
    hangup and failed, with `t` from time.monotonic(). Call failures are reported, not raised.
    `caller_id` is the From user, as an ATA sends the caller's number.
    """
    emit: OnEvent = on_event or (lambda kind, text, t: None)
    uri = parse_uri(target_uri)
    if not re.fullmatch(r"[A-Za-z0-9+._-]+", caller_id):
        raise ValueError(f"caller_id must be a plain SIP user part, not {caller_id!r}")
    leg = SipLeg(uri, target_address(uri), local_host, t1, caller_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = CallReport(call_id=leg.call_id, target=target_uri, status_code=408, reason="no answer")
    prepared = _Lines(tts, lines)
    await leg.open()
    media = await RtpEndpoint.open(local_host, codec_for("PCMU"), RtpPeer(None, 0, leg.target[0]),
                                   comfort_silence=True)
    serving: asyncio.Task[None] | None = None
    recording = _Recording(started)
    try:
        offer = build_offer(local_host, media.local_port, secrets.randbelow(2**31))
        answer, source = await leg.invite(offer, started + max_call_s, emit)
        if answer is None or answer.status >= 300:
            if answer is not None:
                report.status_code, report.reason = answer.status, answer.reason
            emit("failed", f"{report.status_code} {report.reason}", time.monotonic())
            return report
        report.status_code, report.reason = answer.status, answer.reason
        leg.ack(answer)
        serving = asyncio.create_task(leg.serve())
        try:
            plan = negotiate_audio(parse_sdp(answer.body))
        except SdpError as err:
            report.hangup_reason = f"unusable SDP answer: {err}"
            await leg.bye()
            return report
        media.codec = codec_for(plan.encoding, plan.payload_type)
        media.set_peer(RtpPeer(plan.remote_address, plan.remote_port, source[0]))
        emit("answered", f"{answer.status} {answer.reason}", time.monotonic())
        script = CallerScript(lines, quiet_s=quiet_s, give_up_s=give_up_s)
        recording = _Recording(loop.time())
        report.hangup_reason = await _converse(leg, media, script, prepared, recording,
                                               started + max_call_s, emit)
        report.turns, report.greeting_ms = script.turns, script.greeting_ms
        report.agent_hung_up = leg.agent_bye.is_set()
        if not report.agent_hung_up:
            await leg.bye()
        emit("hangup", "agent" if report.agent_hung_up else f"caller: {report.hangup_reason}",
             time.monotonic())
        return report
    finally:
        prepared.close()
        media.close()
        if serving is not None:
            serving.cancel()
        leg.close()
        report.duration_s = round(loop.time() - started, 3)
        if wav_path is not None:
            write_wav(Path(wav_path), recording.audio())
            report.wav_path = str(wav_path)


async def _converse(leg: SipLeg, media: RtpEndpoint, script: CallerScript, prepared: _Lines,
                    recording: _Recording, deadline: float, emit: OnEvent) -> str:
    """Run the script until someone hangs up; returns why the conversation ended."""
    loop = asyncio.get_running_loop()
    heard: asyncio.Queue[tuple[np.ndarray, float]] = asyncio.Queue()

    async def listen() -> None:
        async for frame in media.frames():
            now = loop.time()
            recording.add(frame, now)
            heard.put_nowait((frame, now))

    async def say(index: int, text: str) -> None:
        pcm = await prepared.get(index)
        begun = loop.time()
        emit("caller_says", text, time.monotonic())
        await media.play(pcm)
        script.caller_spoke(index, begun, loop.time())

    listener = asyncio.create_task(listen())
    speaking: asyncio.Task[None] | None = None
    script.start(loop.time())
    try:
        while True:
            if leg.agent_bye.is_set():
                script.finish(loop.time())
                return "agent hung up"
            if loop.time() >= deadline:
                return "max_call_s reached"
            if speaking is not None and speaking.done() and speaking.exception() is not None:
                raise RuntimeError("caller speech failed") from speaking.exception()
            try:
                frame, at = await asyncio.wait_for(heard.get(), 0.02)
                actions = script.on_frame(frame, at)
            except TimeoutError:
                actions = script.on_tick(loop.time())
            for action in actions:
                if isinstance(action, Speak):
                    speaking = asyncio.create_task(say(action.index, action.text))
                elif isinstance(action, AgentSpeaks):
                    emit("agent_speaks", "", time.monotonic())
                elif isinstance(action, AgentQuiet):
                    emit("agent_quiet", f"{action.audio_ms:.0f} ms of audio", time.monotonic())
                elif isinstance(action, HangUp):
                    return action.reason
    finally:
        listener.cancel()
        if speaking is not None:
            speaking.cancel()
