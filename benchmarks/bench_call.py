"""One benchmark call: SIP INVITE/ACK/BYE, G.711 RTP both ways, paced like a phone.

The caller's RTP never stops (speech, else the noise bed, else digital silence, every 20 ms),
and every agent packet's arrival time goes to the DuplexScript, which decides when to talk
and measures. The SIP leg is the scripted caller's (voxeron/caller.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from appliance.voice.g711 import G711Codec, codec_for
from appliance.voice.rtp import RtpPacket, RtpParseError, parse_rtp
from appliance.voice.sdp import SdpError, build_offer, negotiate_audio, parse_sdp
from appliance.voice.sip_uri import parse_uri
from benchmarks.caller_audio import FRAME, NoiseBed, mixed
from benchmarks.duplex_script import Action, DuplexScript, HangUp, Speak, Timings
from voxeron.caller import SipLeg, target_address

PACKET_S = 0.02


@dataclass
class CallOutcome:
    """The SIP result and the measured timings of one call."""

    sip_call_id: str
    status: int
    timings: Timings
    hangup: str = ""
    agent_hung_up: bool = False
    line_s: list[float] = field(default_factory=list)  # duration of each caller line


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, on_packet: Callable[[float], None], payload_type: Callable[[], int]) -> None:
        self.on_packet, self.payload_type = on_packet, payload_type

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        with contextlib.suppress(RtpParseError):
            if parse_rtp(data).payload_type == self.payload_type():
                self.on_packet(asyncio.get_running_loop().time())


class CallerMedia:
    """A phone's RTP: one 20 ms packet per tick; a line replaces silence until it is said."""

    def __init__(self, noise: NoiseBed | None) -> None:
        self.noise = noise
        self.codec: G711Codec = codec_for("PCMU")
        self.dest: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._line: np.ndarray | None = None
        self._pos = 0
        self._started: Callable[[float], None] | None = None
        self._ended: asyncio.Future[float] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.arrivals: list[float] = []

    async def open(self, host: str, on_packet: Callable[[float], None]) -> int:
        def record(at: float) -> None:
            self.arrivals.append(at)
            on_packet(at)

        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Receiver(record, lambda: self.codec.payload_type), local_addr=(host, 0))
        return int(self.transport.get_extra_info("sockname")[1])

    def start(self, dest: tuple[str, int], codec: G711Codec) -> None:
        self.dest, self.codec = dest, codec
        self._sender = asyncio.create_task(self._send_loop())

    async def say(self, pcm: np.ndarray, started: Callable[[float], None]) -> float:
        """Send `pcm` from the next tick on; returns the send time of its last packet."""
        self._line, self._pos, self._started = pcm, 0, started
        self._ended = asyncio.get_running_loop().create_future()
        return await self._ended

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        ssrc, seq, k = secrets.randbelow(2**32), secrets.randbelow(2**16), 0
        t0 = loop.time()
        while True:
            speech = None
            if self._line is not None:
                speech = self._line[self._pos: self._pos + FRAME]
                self._pos += FRAME
            frame = mixed(speech, self.noise.frame(k) if self.noise else None)
            packet = RtpPacket(self.codec.payload_type, (seq + k) & 0xFFFF, (k * FRAME) & 0xFFFFFFFF,
                               ssrc, self.codec.encode(frame), marker=k == 0)
            if self.transport is not None and self.dest is not None:
                self.transport.sendto(packet.to_bytes(), self.dest)
            now = loop.time()
            if speech is not None and self._started is not None:
                self._started(now)
                self._started = None
            if self._line is not None and self._pos >= len(self._line):
                self._line = None
                if self._ended is not None and not self._ended.done():
                    self._ended.set_result(now)
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * PACKET_S - loop.time()))

    def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self.transport is not None:
            self.transport.close()


async def place_bench_call(target_uri: str, lines: list[np.ndarray], script: DuplexScript, *,
                           noise: NoiseBed | None = None, caller_id: str = "5550100",
                           local_host: str = "127.0.0.1", max_call_s: float = 120.0) -> CallOutcome:
    """Call, speak `lines` as `script` decides, hang up (or be hung up on); never raises for
    call failures: they come back as the outcome's status and hangup reason."""
    loop = asyncio.get_running_loop()
    uri = parse_uri(target_uri)
    leg = SipLeg(uri, target_address(uri), local_host, 0.5, caller_id)
    media = CallerMedia(noise)
    actions: asyncio.Queue[Action] = asyncio.Queue()

    def heard(at: float) -> None:
        for a in script.on_packet(at):
            actions.put_nowait(a)

    await leg.open()
    port = await media.open(local_host, heard)
    outcome = CallOutcome(leg.call_id, 408, script.timings,
                          line_s=[round(len(p) / 8000, 3) for p in lines])
    serving: asyncio.Task[None] | None = None
    deadline = loop.time() + max_call_s
    try:
        answer, source = await leg.invite(build_offer(local_host, port, secrets.randbelow(2**31)),
                                          deadline, lambda *_: None)
        if answer is None or answer.status >= 300:
            outcome.status = answer.status if answer is not None else 408
            outcome.hangup = "call not answered"
            return outcome
        outcome.status = answer.status
        leg.ack(answer)
        script.answered(loop.time())
        serving = asyncio.create_task(leg.serve())
        try:
            plan = negotiate_audio(parse_sdp(answer.body))
        except SdpError as err:
            outcome.hangup = f"unusable SDP answer: {err}"
            await leg.bye()
            return outcome
        media.start((plan.remote_address or source[0], plan.remote_port),
                    codec_for(plan.encoding, plan.payload_type))
        outcome.hangup = await _converse(leg, media, script, lines, actions, deadline)
        outcome.agent_hung_up = leg.agent_bye.is_set()
        if not outcome.agent_hung_up:
            await leg.bye()
        return outcome
    finally:
        media.close()
        if serving is not None:
            serving.cancel()
        leg.close()


async def _converse(leg: SipLeg, media: CallerMedia, script: DuplexScript, lines: list[np.ndarray],
                    actions: asyncio.Queue[Action], deadline: float) -> str:
    loop = asyncio.get_running_loop()
    speaking: asyncio.Task[None] | None = None

    async def say(index: int) -> None:
        script.speech_ended(await media.say(lines[index], script.speech_started))

    try:
        while True:
            if leg.agent_bye.is_set():
                return "agent hung up"
            if loop.time() >= deadline:
                return "max_call_s reached"
            if speaking is not None and speaking.done() and speaking.exception() is not None:
                raise RuntimeError("caller speech failed") from speaking.exception()
            try:
                action = await asyncio.wait_for(actions.get(), PACKET_S)
            except TimeoutError:
                for a in script.on_tick(loop.time()):
                    actions.put_nowait(a)
                continue
            if isinstance(action, Speak):
                speaking = asyncio.create_task(say(action.index))
            elif isinstance(action, HangUp):
                return action.reason
    finally:
        if speaking is not None:
            speaking.cancel()
