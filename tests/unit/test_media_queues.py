"""MediaQueues: the caller-frame inbox and agent-audio queue every transport shares.

Driven step by step on one event loop (no clock): a test takes chunks as a transport would
and checks which play()/drain() waiters are released, and when.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from aiortc import RTCPeerConnection

from appliance.voice.media_queues import MediaQueues, QueuedMediaChannel
from appliance.voice.webrtc_peer import WEB_FRAME, WebRtcMedia


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def frame(level: int, size: int = 160) -> np.ndarray:
    return np.full(size, level, dtype=np.int16)


async def settle() -> None:
    """Let every task that is ready run (a few loop turns; no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_frames_come_out_in_order_and_end_after_close() -> None:
    async def scenario() -> None:
        queues = MediaQueues()
        got: list[int] = []

        async def read() -> None:
            async for f in queues.frames():
                got.append(int(f[0]))

        reader = asyncio.create_task(read())
        queues.push([frame(1), frame(2)])
        await settle()
        assert got == [1, 2] and not reader.done()
        queues.push([])  # nothing new: the reader keeps waiting
        queues.push([frame(3)])
        queues.close()  # what was pushed before close is still delivered
        await asyncio.wait_for(reader, 1)
        assert got == [1, 2, 3] and queues.stats.frames_in == 3
        assert [f async for f in queues.frames()] == []

    run(scenario)


def test_a_full_inbox_keeps_the_newest_frames_and_counts_the_dropped() -> None:
    async def scenario() -> None:
        queues = MediaQueues(max_buffered_frames=3)
        queues.push(frame(level) for level in range(5))
        assert (queues.stats.frames_in, queues.stats.overflow) == (5, 2)
        queues.close()
        assert [int(f[0]) async for f in queues.frames()] == [2, 3, 4]

    run(scenario)


def test_clear_frames_forgets_unread_caller_audio() -> None:
    async def scenario() -> None:
        queues = MediaQueues()
        queues.push([frame(1), frame(2)])
        queues.clear_frames()
        queues.push([frame(3)])
        queues.close()
        assert [int(f[0]) async for f in queues.frames()] == [3]
        assert queues.stats.overflow == 0

    run(scenario)


def test_play_rejects_what_is_not_1d_int16_and_queues_nothing() -> None:
    async def scenario() -> None:
        queues = MediaQueues()
        with pytest.raises(TypeError, match="1-D int16"):
            await queues.play(np.zeros(160, dtype=np.float32))
        with pytest.raises(TypeError, match="1-D int16"):
            await queues.play(np.zeros((2, 160), dtype=np.int16))
        await queues.play(np.zeros(0, dtype=np.int16))  # empty: returns at once
        assert not queues.playing and queues.take(160) is None

    run(scenario)


def test_play_returns_once_its_last_chunk_is_taken_and_pads_the_tail() -> None:
    async def scenario() -> None:
        woken: list[int] = []
        queues = MediaQueues(on_queued=lambda: woken.append(1))
        first = asyncio.create_task(queues.play(np.arange(1, 401, dtype=np.int16)))  # 2.5 chunks
        second = asyncio.create_task(queues.play(frame(7)))
        await settle()
        assert queues.playing and len(woken) == 2
        a, b = queues.take(160), queues.take(160)
        assert a is not None and b is not None and a[0] == 1 and b[0] == 161
        await settle()
        assert not first.done()
        tail = queues.take(160)
        assert tail is not None and tail.shape == (160,) and tail.dtype == np.int16
        assert tail[:80].tolist() == list(range(321, 401)) and not tail[80:].any()
        await settle()
        assert first.done() and not second.done() and queues.playing
        last = queues.take(160)
        assert last is not None and last.tolist() == [7] * 160
        await asyncio.wait_for(second, 1)
        assert not queues.playing and queues.take(160) is None
        assert queues.stats.frames_out == 4

    run(scenario)


def test_prepare_converts_each_segment_before_it_is_queued() -> None:
    async def scenario() -> None:
        queues = MediaQueues(prepare=lambda pcm: np.repeat(pcm, 6))
        play = asyncio.create_task(queues.play(np.arange(160, dtype=np.int16)))
        await settle()
        chunk = queues.take(WEB_FRAME)
        assert chunk is not None and chunk[:7].tolist() == [0, 0, 0, 0, 0, 0, 1]
        await asyncio.wait_for(play, 1)  # 960 prepared samples: one chunk took them all

    run(scenario)


def test_drain_waits_for_what_is_queued_and_returns_at_once_when_idle() -> None:
    async def scenario() -> None:
        queues = MediaQueues()
        await asyncio.wait_for(queues.drain(), 1)  # nothing queued
        play = asyncio.create_task(queues.play(frame(1, 320)))
        await settle()
        drained = asyncio.create_task(queues.drain())
        await settle()
        queues.take(160)
        await settle()
        assert not drained.done()
        queues.take(160)
        await asyncio.wait_for(asyncio.gather(play, drained), 1)

    run(scenario)


def test_stop_playback_cuts_everything_and_releases_every_waiter() -> None:
    async def scenario() -> None:
        queues = MediaQueues()
        plays = [asyncio.create_task(queues.play(frame(i, 8000))) for i in (1, 2)]
        await settle()
        queues.take(160)  # the first prompt has started
        drained = asyncio.create_task(queues.drain())
        await settle()
        assert not drained.done() and queues.playing
        queues.stop_playback()  # barge-in
        await asyncio.wait_for(asyncio.gather(*plays, drained), 1)
        assert not queues.playing and queues.take(160) is None
        later = asyncio.create_task(queues.play(frame(3)))  # queueing goes on after a cut
        await settle()
        chunk = queues.take(160)
        assert chunk is not None and chunk[0] == 3
        await asyncio.wait_for(later, 1)

    run(scenario)


def test_cancelling_a_player_does_not_unqueue_its_audio() -> None:
    async def scenario() -> None:
        queues = MediaQueues()
        play = asyncio.create_task(queues.play(frame(5)))
        await settle()
        play.cancel()
        await settle()
        assert play.cancelled() and queues.playing
        chunk = queues.take(160)
        assert chunk is not None and chunk[0] == 5 and not queues.playing

    run(scenario)


def test_close_releases_players_and_later_plays_return_at_once() -> None:
    async def scenario() -> None:
        queues = MediaQueues()
        play = asyncio.create_task(queues.play(frame(1, 8000)))
        await settle()
        drained = asyncio.create_task(queues.drain())
        await settle()
        queues.close()
        await asyncio.wait_for(asyncio.gather(play, drained), 1)
        assert queues.closed.is_set() and not queues.playing
        await asyncio.wait_for(queues.play(frame(2)), 1)
        assert queues.take(160) is None

    run(scenario)


class _Channel(QueuedMediaChannel):
    def __init__(self) -> None:
        self.queues = MediaQueues()


def test_a_queued_channel_answers_the_media_channel_calls_from_its_queues() -> None:
    async def scenario() -> None:
        channel = _Channel()
        play = asyncio.create_task(channel.play(frame(4)))
        await settle()
        assert channel.playing and channel.queues.playing
        drained = asyncio.create_task(channel.drain())
        await settle()
        channel.stop_playback()
        await asyncio.wait_for(asyncio.gather(play, drained), 1)
        channel.queues.push([frame(9)])
        channel.queues.close()
        assert channel.closed.is_set()
        assert [int(f[0]) async for f in channel.frames()] == [9]

    run(scenario)


def test_webrtc_media_counts_browser_audio_through_its_queues() -> None:
    async def scenario() -> None:
        pc = RTCPeerConnection()
        media = WebRtcMedia(pc, max_buffered_frames=2)
        media.push_browser_audio(np.zeros(8000, dtype=np.int16), 1, 8000)  # 50 frames at 8 kHz
        assert media.frames_in == 50 and media.queues.stats.overflow == 48
        media.close()
        assert len([f async for f in media.frames()]) == 2
        await pc.close()

    run(scenario)
