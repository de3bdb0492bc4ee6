"""The WebRTC media channel: a real aiortc "browser" peer talks to answer_offer over UDP.

The browser side sends a 48 kHz stereo tone through Opus; the call must see 20 ms 8 kHz
frames of that tone, and a prompt played at 8 kHz must arrive at the browser as the same
tone. The queue semantics (play returns once sent, barge-in stop, drain) match RtpEndpoint.
"""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame

from appliance.voice.webrtc_peer import (
    WEB_FRAME,
    WEB_RATE,
    Downsampler,
    WebRtcMedia,
    answer_offer,
    to_mono,
    upsample,
)
from appliance.voice.webrtc_signalling import OfferRejected


def tone(freq: float, rate: int, samples: int, start: int = 0, amp: float = 8000) -> np.ndarray:
    t = (np.arange(samples) + start) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


class ToneTrack(MediaStreamTrack):
    """A browser microphone: 20 ms stereo 48 kHz frames of a 400 Hz tone, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.pts = 0

    async def recv(self) -> AudioFrame:
        await asyncio.sleep(0.02)
        mono = tone(400, WEB_RATE, WEB_FRAME, self.pts)
        frame = AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16",
                                        layout="stereo")
        frame.sample_rate, frame.pts = WEB_RATE, self.pts
        frame.time_base = fractions.Fraction(1, WEB_RATE)
        self.pts += WEB_FRAME
        return frame


def test_to_mono_mixes_interleaved_channels() -> None:
    packed = np.array([[100, 300, -200, 200, 7, 9]], dtype=np.int16)
    assert to_mono(packed, 2).tolist() == [200, 0, 8]
    assert to_mono(packed, 1).tolist() == [100, 300, -200, 200, 7, 9]


def test_resampling_keeps_the_tone_and_frames_are_20ms_at_8khz() -> None:
    down = Downsampler()
    frames = []
    for i in range(50):  # one second of 48 kHz in 20 ms packets
        frames += down.push(tone(400, WEB_RATE, WEB_FRAME, i * WEB_FRAME), WEB_RATE)
    assert all(f.dtype == np.int16 and f.shape == (160,) for f in frames)
    assert 47 <= len(frames) <= 50  # the filter holds back ~35 ms at the start
    assert abs(peak_hz(np.concatenate(frames[5:]), 8000) - 400) < 15
    up = upsample(tone(1000, 8000, 8000))
    assert len(up) == WEB_RATE and abs(peak_hz(up, WEB_RATE) - 1000) < 15


def test_play_returns_once_sent_and_stop_playback_releases_waiters() -> None:
    asyncio.run(asyncio.wait_for(_play_returns_once_sent_and_stop_playback_releases_waiters(), 30))


async def _play_returns_once_sent_and_stop_playback_releases_waiters() -> None:
    pc = RTCPeerConnection()
    media = WebRtcMedia(pc)
    with pytest.raises(TypeError):
        await media.play(np.zeros(160, dtype=np.float32))
    first = asyncio.create_task(media.play(np.full(160, 1000, dtype=np.int16)))  # 20 ms
    second = asyncio.create_task(media.play(np.full(1600, 1000, dtype=np.int16)))  # 200 ms
    await asyncio.sleep(0)
    assert media.playing
    out = media._next_out_frame()
    assert out.shape == (WEB_FRAME,) and out.dtype == np.int16 and int(np.abs(out).max()) > 500
    await asyncio.sleep(0)
    assert first.done() and not second.done()
    drained = asyncio.create_task(media.drain())
    media.stop_playback()  # barge-in
    await asyncio.wait_for(asyncio.gather(second, drained), 1)
    assert not media.playing and int(np.abs(media._next_out_frame()).max()) == 0
    media.close()
    assert media.closed.is_set()
    assert [f async for f in media.frames()] == []
    await media.play(np.ones(160, dtype=np.int16))  # after close: returns at once
    await pc.close()


def test_offer_without_audio_is_rejected_with_a_code() -> None:
    asyncio.run(asyncio.wait_for(_offer_without_audio_is_rejected_with_a_code(), 30))


async def _offer_without_audio_is_rejected_with_a_code() -> None:
    with pytest.raises(OfferRejected) as err:
        await answer_offer("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
    assert err.value.code == "test_call.no_audio"
    with pytest.raises(OfferRejected) as bad:
        await answer_offer("m=audio but not SDP at all")
    assert bad.value.code == "test_call.bad_offer"


def test_browser_tone_reaches_the_call_and_the_agent_prompt_reaches_the_browser() -> None:
    asyncio.run(asyncio.wait_for(_browser_tone_reaches_the_call_and_the_agent_prompt_reaches_the_browser(), 30))


async def _browser_tone_reaches_the_call_and_the_agent_prompt_reaches_the_browser() -> None:
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    browser.addTrack(ToneTrack())
    heard: asyncio.Queue[np.ndarray] = asyncio.Queue()

    @browser.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            while True:
                frame = await track.recv()
                await heard.put(to_mono(frame.to_ndarray(), len(frame.layout.channels)))
        asyncio.create_task(read())

    await browser.setLocalDescription(await browser.createOffer())
    answer_sdp, media = await answer_offer(browser.localDescription.sdp)
    assert "a=candidate" in answer_sdp and "stun" not in answer_sdp.lower()
    await browser.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
    try:
        frames = []
        async for frame in media.frames():
            frames.append(frame)
            if len(frames) == 60:
                break
        assert all(f.shape == (160,) and f.dtype == np.int16 for f in frames)
        assert abs(peak_hz(np.concatenate(frames[20:]), 8000) - 400) < 20

        await asyncio.wait_for(media.play(tone(1000, 8000, 8000)), 10)  # one second
        assert not media.playing and media.frames_out >= 50
        received = []
        while not heard.empty():
            received.append(heard.get_nowait())
        loud = [f for f in received if np.abs(f).max() > 2000]
        assert len(loud) >= 25, f"{len(loud)} loud frames of {len(received)}"
        assert abs(peak_hz(np.concatenate(loud), WEB_RATE) - 1000) < 25
    finally:
        media.close()
        await browser.close()
    await asyncio.wait_for(media.closed.wait(), 1)
