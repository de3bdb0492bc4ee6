"""A browser's WebRTC call as a MediaChannel: the one module that touches aiortc and PyAV.

The setup UI's "Test call" lets an owner talk to the agent from the touchscreen's browser.
The browser sends 48 kHz Opus; a CallSession wants the 20 ms 8 kHz frames a phone gives
and plays 8 kHz prompts. This adapter resamples both ways with soxr and otherwise behaves
like RtpEndpoint, so the dialog cannot tell a test call from a phone call.

ICE is non-trickle and host-only: no STUN or TURN server is configured (aiortc would
otherwise ask Google's), so the answer carries the box's own interface addresses and the
media stays on the machine the browser runs on.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections.abc import Callable

import numpy as np
import soxr
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from appliance.voice.jitter_buffer import FRAME_SAMPLES, Reframer
from appliance.voice.media_queues import MediaQueues, QueuedMediaChannel
from appliance.voice.sip_agent import CallHandler, CallInfo
from appliance.voice.webrtc_signalling import OfferRejected, WebCallServer, WebMedia
from sync.structured_log import fields

log = logging.getLogger(__name__)

PHONE_RATE = 8000
WEB_RATE = 48000  # Opus in WebRTC always runs at 48 kHz
WEB_FRAME = WEB_RATE * FRAME_SAMPLES // PHONE_RATE  # 960 samples = 20 ms
GATHER_TIMEOUT_S = 10.0


def to_mono(samples: np.ndarray, channels: int) -> np.ndarray:
    """Packed (interleaved) int16 audio of `channels` channels as one int16 channel."""
    flat = np.asarray(samples).reshape(-1)
    if channels <= 1:
        return flat.astype(np.int16, copy=False)
    usable = len(flat) // channels * channels
    mixed = flat[:usable].reshape(-1, channels).astype(np.int32).mean(axis=1)
    return mixed.astype(np.int16)


class Downsampler:
    """Browser audio of any rate -> 8 kHz 20 ms frames, streaming (no clicks between packets)."""

    def __init__(self) -> None:
        self._rate = 0
        self._stream: soxr.ResampleStream | None = None
        self._reframer = Reframer()

    def push(self, mono: np.ndarray, rate: int) -> list[np.ndarray]:
        if rate != self._rate or self._stream is None:
            self._rate = rate
            # MQ holds back ~35 ms; HQ ~130 ms, which would delay every end of turn.
            self._stream = soxr.ResampleStream(rate, PHONE_RATE, 1, dtype="int16", quality="MQ")
        out = self._stream.resample_chunk(mono.astype(np.int16, copy=False))
        return self._reframer.push(np.asarray(out, dtype=np.int16))


def upsample(pcm: np.ndarray) -> np.ndarray:
    """An 8 kHz prompt as 48 kHz int16 audio for the Opus encoder."""
    if len(pcm) == 0:
        return np.zeros(0, dtype=np.int16)
    return np.asarray(soxr.resample(pcm, PHONE_RATE, WEB_RATE), dtype=np.int16)


class AgentTrack(MediaStreamTrack):
    """The agent's voice towards the browser: queued prompts, else silence, paced in real time.

    WebRTC wants a continuous track, so idle time is sent as silence (unlike our RTP leg).
    """

    kind = "audio"

    def __init__(self, media: WebRtcMedia) -> None:
        super().__init__()
        self._media = media
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += WEB_FRAME
            wait = self._start + self._pts / WEB_RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = self._media._next_out_frame()
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.pts = self._pts
        frame.sample_rate = WEB_RATE
        frame.time_base = fractions.Fraction(1, WEB_RATE)
        return frame


class WebRtcMedia(QueuedMediaChannel):
    """One browser call leg; implements the MediaChannel protocol of the SIP agent.

    The queues (caller frames, prompts, barge-in, drain) are a MediaQueues holding prompts
    upsampled to 48 kHz; this class adds the aiortc tracks and the resampling.
    """

    def __init__(self, pc: RTCPeerConnection, *, max_buffered_frames: int = 1500) -> None:
        self.pc = pc
        self.track = AgentTrack(self)
        self.queues = MediaQueues(max_buffered_frames=max_buffered_frames, prepare=upsample)
        self._closed = self.queues.closed
        self._listeners: list[Callable[[str], None]] = []
        self._down = Downsampler()
        self._reader: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def frames_in(self) -> int:
        """8 kHz frames of browser audio handed to the call so far."""
        return self.queues.stats.frames_in

    @property
    def frames_out(self) -> int:
        """20 ms chunks of prompt audio the browser track has taken so far."""
        return self.queues.stats.frames_out

    def attach(self, track: MediaStreamTrack) -> None:
        """Start reading the browser's microphone track."""
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.create_task(self._read(track), name="webrtc-reader")

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while not self._closed.is_set():
                frame = await track.recv()
                samples, channels = frame.to_ndarray(), len(frame.layout.channels)
                if frame.format.is_planar:  # one row per channel: the first will do
                    samples, channels = samples[0], 1
                self.push_browser_audio(samples, channels, frame.sample_rate)
        except MediaStreamError:  # the browser hung up
            log.info("browser audio ended")
        except Exception:  # a decoder failure must end this call, not hang it
            log.exception("browser audio failed")
        self.close()

    def push_browser_audio(self, packed: np.ndarray, channels: int, rate: int) -> None:
        """Interleaved int16 browser audio in; 8 kHz frames become available to frames()."""
        self.queues.push(self._down.push(to_mono(packed, channels), rate))

    # -- MediaChannel (the queue half comes from QueuedMediaChannel) ---------------------

    def on_dtmf(self, listener: Callable[[str], None]) -> None:
        """Kept for the protocol: the test call page has no keypad, so no key ever arrives."""
        self._listeners.append(listener)

    def close(self) -> None:
        """End the call: frames() finishes, play() returns, the peer connection closes."""
        if self._closed.is_set():
            return
        self.queues.close()
        self.track.stop()
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
        self._closing = asyncio.get_running_loop().create_task(self.pc.close())
        log.info("test call media closed", extra=fields(
            frames_in=self.frames_in, frames_out=self.frames_out,
            overflow=self.queues.stats.overflow))

    # -- send ----------------------------------------------------------------------------

    def _next_out_frame(self) -> np.ndarray:
        """The next 20 ms at 48 kHz for the browser: queued prompt audio, else silence."""
        pcm = self.queues.take(WEB_FRAME)
        return pcm if pcm is not None else np.zeros(WEB_FRAME, dtype=np.int16)


async def answer_offer(offer_sdp: str) -> tuple[str, WebRtcMedia]:
    """Answer a browser's complete (non-trickle) SDP offer with a complete answer.

    Raises OfferRejected when the offer is not SDP, carries no audio, or ICE gathering fails.
    """
    if "m=audio" not in offer_sdp:
        raise OfferRejected("test_call.no_audio", "the offer has no audio (m=audio) section")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    media = WebRtcMedia(pc)

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        media.attach(track)

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        log.info("test call connection", extra=fields(state=pc.connectionState))
        if pc.connectionState in ("failed", "closed"):
            media.close()

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(media.track)
        answer = await pc.createAnswer()
        # aiortc gathers every candidate inside setLocalDescription: the answer is complete.
        await asyncio.wait_for(pc.setLocalDescription(answer), GATHER_TIMEOUT_S)
    except (ValueError, AssertionError) as err:  # aiortc's SDP parser and state checks
        await pc.close()
        raise OfferRejected("test_call.bad_offer", f"the SDP offer was not accepted: {err}") from err
    except TimeoutError as err:
        await pc.close()
        raise OfferRejected("test_call.ice_timeout", "ICE gathering did not finish") from err
    return pc.localDescription.sdp, media


async def serve_web_calls(port: int, on_call: CallHandler) -> WebCallServer | None:
    """Start the loopback signalling endpoint; each answered offer runs through `on_call`.
    None (and an error logged) when the port is taken: phone calls matter more than tests."""

    async def run(info: CallInfo, media: WebMedia) -> None:
        assert isinstance(media, WebRtcMedia)
        await on_call(info, media)

    server = WebCallServer(port, answer_offer, run)
    try:
        await server.start()
    except OSError as err:
        log.error("test calls off: signalling port unavailable",
                  extra=fields(port=port, error=str(err)))
        return None
    return server
