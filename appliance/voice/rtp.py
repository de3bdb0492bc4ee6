"""RTP for one G.711 call leg (RFC 3550): packet format and an asyncio endpoint.

The endpoint is the MediaChannel a call handler sees: ordered, repaired 20 ms frames in,
real-time paced playback out. Idle policy: when nothing is queued the agent's endpoint
sends nothing (silence suppression, marker bit on the next talkspurt); the test/demo caller
sets `comfort_silence` and sends silence frames continuously instead, like a real phone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from appliance.voice.dtmf import DtmfParseError, DtmfReceiver, parse_event
from appliance.voice.g711 import G711Codec
from appliance.voice.jitter_buffer import (
    FRAME_SAMPLES,
    JitterBuffer,
    JitterStats,
    Reframer,
    conceal,
)
from appliance.voice.media_queues import MediaQueues, MediaQueueStats, QueuedMediaChannel
from appliance.voice.playout_clock import PlayoutClock
from sync.structured_log import fields

_HEADER = struct.Struct("!BBHII")
log = logging.getLogger(__name__)


class RtpParseError(ValueError):
    """A datagram that is not an RTP version 2 packet."""


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet (fixed header, CSRCs, payload); extensions and padding are not kept."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()

    def to_bytes(self) -> bytes:
        b0 = 0x80 | len(self.csrcs)
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        head = _HEADER.pack(b0, b1, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
        return head + b"".join(struct.pack("!I", c) for c in self.csrcs) + self.payload


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse an RTP packet; CSRCs are read, a header extension is skipped, padding removed."""
    if len(data) < _HEADER.size:
        raise RtpParseError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpParseError(f"RTP version {b0 >> 6}")
    cc = b0 & 0x0F
    offset = _HEADER.size + 4 * cc
    if len(data) < offset:
        raise RtpParseError("truncated CSRC list")
    csrcs = struct.unpack_from(f"!{cc}I", data, _HEADER.size)
    if b0 & 0x10:
        if len(data) < offset + 4:
            raise RtpParseError("truncated header extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
        if len(data) < offset:
            raise RtpParseError("truncated header extension")
    end = len(data)
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or offset + pad > end:
            raise RtpParseError("bad padding")
        end -= pad
    return RtpPacket(payload_type=b1 & 0x7F, sequence=seq, timestamp=ts, ssrc=ssrc,
                     payload=bytes(data[offset:end]), marker=bool(b1 & 0x80), csrcs=csrcs)


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


class RtpPeer:
    """Where RTP goes and whose RTP is accepted; never resolves a name from a message.

    The SDP address is trusted only when it is an IP literal equal to the SIP packet's
    source IP; otherwise we latch onto the source of the first RTP packet (symmetric RTP)
    and from then on accept only that source.
    """

    def __init__(self, sdp_address: str | None, sdp_port: int, sip_source_ip: str) -> None:
        self._sip_ip = sip_source_ip
        self._trusted = bool(sdp_address) and sdp_port > 0 and _same_ip(sdp_address or "", sip_source_ip)
        self.destination: tuple[str, int] | None = (
            (str(sdp_address), sdp_port) if self._trusted else None
        )

    @property
    def latched(self) -> bool:
        """True once the destination was learnt from received RTP rather than the SDP."""
        return not self._trusted and self.destination is not None

    def accept(self, source: tuple[str, int]) -> bool:
        """True if RTP from `source` belongs to this call (latching onto it if still open)."""
        if self._trusted:
            return _same_ip(source[0], self._sip_ip)
        if self.destination is None:
            self.destination = (source[0], source[1])
            return True
        return (source[0], source[1]) == self.destination


@dataclass
class RtpStats:
    """Counters of one endpoint, logged when the call ends."""

    packets_in: int = 0
    packets_out: int = 0
    malformed: int = 0
    foreign: int = 0
    digits: int = 0
    jitter: JitterStats = field(default_factory=JitterStats)
    queues: MediaQueueStats = field(default_factory=MediaQueueStats)  # overflow lives here


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.endpoint._on_datagram(data, addr)


class RtpEndpoint(QueuedMediaChannel):
    """One call leg's RTP socket; implements the MediaChannel protocol of the SIP agent.

    The queues (caller frames, prompts, barge-in, drain) are a MediaQueues; this class
    adds the socket, the jitter buffer, DTMF, hold and real-time pacing.
    """

    def __init__(self, codec: G711Codec, peer: RtpPeer, *, comfort_silence: bool = False,
                 jitter_depth: int = 3, max_buffered_frames: int = 1500,
                 dtmf_payload_type: int | None = None) -> None:
        self.codec = codec
        self.peer = peer
        self.dtmf_payload_type = dtmf_payload_type
        self.held = False  # the caller put us on hold: send nothing, ignore what comes in
        self._dtmf = DtmfReceiver()
        self._dtmf_listeners: list[Callable[[str], None]] = []
        self.stats = RtpStats()
        self._comfort = comfort_silence
        self._jitter: JitterBuffer[RtpPacket] = JitterBuffer(depth=jitter_depth)
        self.stats.jitter = self._jitter.stats
        self._reframer = Reframer()
        self._wake = asyncio.Event()
        self.queues = MediaQueues(max_buffered_frames=max_buffered_frames,
                                  on_queued=self._wake.set)
        self.stats.queues = self.queues.stats
        self._closed = self.queues.closed
        self._peer_known = asyncio.Event()
        if peer.destination is not None:
            self._peer_known.set()
        self._clock = PlayoutClock(timestamp=secrets.randbits(32))
        self._seq = secrets.randbits(16)
        self._ssrc = secrets.randbits(32)
        self._ssrc_in: int | None = None
        self._last_pcm: np.ndarray | None = None
        self._loss_run = 0
        self._was_audio = False
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, host: str, codec: G711Codec, peer: RtpPeer, *, port: int = 0,
                   comfort_silence: bool = False, jitter_depth: int = 3,
                   dtmf_payload_type: int | None = None) -> RtpEndpoint:
        """Bind a UDP socket on host:port (0 = any free port) and start the sender."""
        endpoint = cls(codec, peer, comfort_silence=comfort_silence, jitter_depth=jitter_depth,
                       dtmf_payload_type=dtmf_payload_type)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(endpoint),
                                                           local_addr=(host, port))
        endpoint._transport = transport
        endpoint._sender = asyncio.create_task(endpoint._send_loop(), name="rtp-sender")
        return endpoint

    def set_peer(self, peer: RtpPeer) -> None:
        """Adopt the peer learnt from an SDP answer (a caller opens its socket before that)."""
        self.peer = peer
        if peer.destination is not None:
            self._peer_known.set()

    def hold(self, held: bool) -> None:
        """On hold (RFC 3264 8.4) nothing is sent and caller audio (music on hold) is dropped;
        queued prompts pause where they are and go on (a new talkspurt) after resume."""
        if held and not self.held:
            self.queues.clear_frames()
        self.held = held
        self._wake.set()

    def on_dtmf(self, listener: Callable[[str], None]) -> None:
        """Call `listener` with each key the caller presses (RFC 4733 or SIP INFO)."""
        self._dtmf_listeners.append(listener)

    def deliver_dtmf(self, symbol: str) -> None:
        """Hand a key press to the listeners (the SIP agent calls this for INFO relay)."""
        self.stats.digits += 1
        log.info("caller pressed a key", extra=fields(digit=symbol))
        for listener in list(self._dtmf_listeners):
            try:
                listener(symbol)
            except Exception:  # a listener bug must not stop the media
                log.exception("DTMF listener failed")

    @property
    def local_port(self) -> int:
        """The bound UDP port, for the SDP answer or offer."""
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        """End the media: frames() finishes, play() returns, the socket closes."""
        if self._closed.is_set():
            return
        self.queues.close()
        for event in (self._wake, self._peer_known):
            event.set()
        if self._sender is not None:
            self._sender.cancel()
        if self._transport is not None:
            self._transport.close()

    # -- receive -------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._closed.is_set():
            return
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            self.stats.malformed += 1
            return
        if not self.peer.accept(addr):  # only a real RTP packet may latch the peer
            self.stats.foreign += 1
            return
        self._peer_known.set()
        self.stats.packets_in += 1
        if self._ssrc_in is not None and packet.ssrc != self._ssrc_in:
            for _, item in self._jitter.flush():
                self._decode(item)
            self._jitter.reset()
        self._ssrc_in = packet.ssrc
        if packet.payload_type == self.dtmf_payload_type and self.dtmf_payload_type is not None:
            self._on_tone(packet)  # at once: the jitter buffer may sit on the last packets
        for _, item in self._jitter.push(packet.sequence, packet):
            self._decode(item)

    def _on_tone(self, packet: RtpPacket) -> None:
        try:
            event = parse_event(packet.payload)
        except DtmfParseError:
            self.stats.malformed += 1
            return
        for digit in self._dtmf.feed(packet.timestamp, event):
            self.deliver_dtmf(digit.symbol)

    def _decode(self, packet: RtpPacket | None) -> None:
        if packet is None:
            self._loss_run += 1
            size = len(self._last_pcm) if self._last_pcm is not None else FRAME_SAMPLES
            pcm = conceal(self._last_pcm, self._loss_run, size)
        elif packet.payload_type == self.codec.payload_type:
            pcm = self.codec.decode(packet.payload)
            self._last_pcm, self._loss_run = pcm, 0
        else:
            return  # telephone-event, comfort noise: not audio frames
        if self.held:
            return
        self.queues.push(self._reframer.push(pcm))

    # -- send ----------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        try:
            await self._pace()
        except asyncio.CancelledError:
            raise
        except Exception:  # a dead sender would hang every play(): end the media instead
            log.exception("RTP sender failed")
            self.close()

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed.is_set():
            if (not self.queues.playing and not self._comfort) or self.held:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.peer.destination is None:
                await self._peer_known.wait()
                continue
            self._clock.start_talkspurt(loop.time())
            self._was_audio = False
            while not self._closed.is_set() and (self.queues.playing or self._comfort) and not self.held:
                self._send_frame(loop.time())
                delay = self._clock.due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)

    def _send_frame(self, now: float) -> None:
        pcm = self.queues.take(FRAME_SAMPLES)
        if pcm is not None:
            if not self._was_audio and self._comfort:
                self._clock.mark_talkspurt()
            self._was_audio = True
        else:
            pcm, self._was_audio = np.zeros(FRAME_SAMPLES, dtype=np.int16), False
        timing = self._clock.next_packet(now)
        packet = RtpPacket(self.codec.payload_type, self._seq, timing.timestamp, self._ssrc,
                           self.codec.encode(pcm), marker=timing.marker)
        self._seq = (self._seq + 1) & 0xFFFF
        if self._transport is not None and self.peer.destination is not None and not self.held:
            self._transport.sendto(packet.to_bytes(), self.peer.destination)
            self.stats.packets_out += 1
