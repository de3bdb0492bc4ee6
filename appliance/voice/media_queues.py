"""The queue half of a MediaChannel, shared by every transport (RTP, WebRTC).

A call handler sees the same thing whatever carries the audio: caller frames come out of
an inbox in order, and agent audio goes into a queue of segments that the transport takes
from at its own pace. Barge-in (stop_playback) cuts the whole queue at once and releases
every waiter; drain() waits for what is queued so far. The transport only packetises and
paces: it pushes decoded caller frames in and takes fixed-size chunks out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import numpy as np

AudioPrep = Callable[[np.ndarray], np.ndarray]


@dataclass
class MediaQueueStats:
    """Counters of one call's queues, for the log line at hang-up."""

    frames_in: int = 0   # caller frames pushed into the inbox
    frames_out: int = 0  # chunks of agent audio taken by the transport
    overflow: int = 0    # caller frames dropped because nobody read frames()


@dataclass
class _Segment:
    pcm: np.ndarray
    done: asyncio.Future[None]
    pos: int = 0


class MediaQueues:
    """Caller-frame inbox and agent-audio queue of one call; no I/O, no clock.

    `prepare` turns validated 8 kHz prompt audio into what the transport sends (WebRTC
    upsamples to 48 kHz); `on_queued` wakes a transport that sleeps while nothing is queued.
    """

    def __init__(self, *, max_buffered_frames: int = 1500, prepare: AudioPrep | None = None,
                 on_queued: Callable[[], None] | None = None) -> None:
        self.stats = MediaQueueStats()
        self._prepare = prepare
        self._on_queued = on_queued
        self._frames: deque[np.ndarray] = deque(maxlen=max_buffered_frames)
        self._frame_ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._queue: deque[_Segment] = deque()
        self._drain_waiters: list[asyncio.Future[None]] = []

    @property
    def closed(self) -> asyncio.Event:
        """Set when the call has ended; frames() then finishes and play() returns at once."""
        return self._closed

    @property
    def playing(self) -> bool:
        """True while queued agent audio remains to be taken."""
        return bool(self._queue)

    # -- caller audio in -----------------------------------------------------------------

    def push(self, frames: Iterable[np.ndarray]) -> None:
        """Add caller frames; when the inbox is full the oldest go (and are counted)."""
        pushed = False
        for frame in frames:
            if len(self._frames) == self._frames.maxlen:
                self.stats.overflow += 1  # nobody reads frames(): keep the newest
            self._frames.append(frame)
            self.stats.frames_in += 1
            pushed = True
        if pushed:
            self._frame_ready.set()

    def clear_frames(self) -> None:
        """Forget unread caller frames (the caller put us on hold)."""
        self._frames.clear()

    async def frames(self) -> AsyncIterator[np.ndarray]:
        """Caller frames in the order pushed, until close(); what was pushed before is kept."""
        while True:
            while self._frames:
                yield self._frames.popleft()
            if self._closed.is_set():
                return
            self._frame_ready.clear()
            await self._frame_ready.wait()

    # -- agent audio out -----------------------------------------------------------------

    async def play(self, pcm: np.ndarray) -> None:
        """Queue int16 8 kHz audio behind what is queued; return once taken or stopped.

        Cancelling the caller of play() does not unqueue its audio: stop_playback() does.
        """
        samples = np.asarray(pcm)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise TypeError(f"play() takes 1-D int16 audio, got {samples.dtype} {samples.shape}")
        if self._closed.is_set() or len(samples) == 0:
            return
        prepared = self._prepare(samples) if self._prepare is not None else samples
        segment = _Segment(prepared, asyncio.get_running_loop().create_future())
        self._queue.append(segment)
        if self._on_queued is not None:
            self._on_queued()
        await segment.done

    def take(self, size: int) -> np.ndarray | None:
        """The next `size` samples of queued audio, zero-padded at a segment's end; None if idle.

        A segment's play() is released once its last chunk has been taken, and drain()
        once the queue is empty.
        """
        if not self._queue:
            return None
        segment = self._queue[0]
        pcm = segment.pcm[segment.pos : segment.pos + size]
        segment.pos += size
        self.stats.frames_out += 1
        if segment.pos >= len(segment.pcm):
            self._queue.popleft()
            _resolve(segment.done)
            if not self._queue:
                self._notify_drained()
        if len(pcm) < size:
            pcm = np.concatenate([pcm, np.zeros(size - len(pcm), dtype=np.int16)])
        return pcm

    def stop_playback(self) -> None:
        """Drop all queued audio now (barge-in); pending play() and drain() calls return."""
        while self._queue:
            _resolve(self._queue.popleft().done)
        self._notify_drained()

    async def drain(self) -> None:
        """Wait until everything queued so far has been taken (or stopped)."""
        if self._queue:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def close(self) -> None:
        """End the queues: frames() finishes, queued and later play() calls return."""
        self._closed.set()
        self.stop_playback()
        self._frame_ready.set()

    def _notify_drained(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            _resolve(waiter)


class QueuedMediaChannel:
    """The MediaChannel methods a transport answers straight from its MediaQueues.

    A transport sets `self.queues` and adds only what is its own (on_dtmf, close).
    """

    queues: MediaQueues

    @property
    def closed(self) -> asyncio.Event:
        """Set when the call has ended; frames() then finishes and play() returns at once."""
        return self.queues.closed

    @property
    def playing(self) -> bool:
        """True while queued agent audio remains to be sent."""
        return self.queues.playing

    def frames(self) -> AsyncIterator[np.ndarray]:
        """Caller audio as int16 8 kHz frames of 160 samples, in order, until the call ends."""
        return self.queues.frames()

    async def play(self, pcm: np.ndarray) -> None:
        """Queue int16 8 kHz audio behind what is queued; return once sent or stopped."""
        await self.queues.play(pcm)

    def stop_playback(self) -> None:
        """Drop all queued audio now (barge-in); pending play() calls return."""
        self.queues.stop_playback()

    async def drain(self) -> None:
        """Wait until everything queued so far has been sent (or stopped)."""
        await self.queues.drain()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
