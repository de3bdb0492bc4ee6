"""Receive-side repair of an RTP stream: reorder, drop duplicates and late packets, fill losses.

Pure and clock-free: packet arrivals are the only time. A missing packet is declared lost
once `depth` later packets have arrived, so in-order audio is released with no added delay
and reordering is tolerated up to `depth` x 20 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")
FRAME_SAMPLES = 160  # 20 ms at 8 kHz


@dataclass
class JitterStats:
    """What the buffer did with the packets it was given."""

    received: int = 0
    released: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0
    resyncs: int = 0


class JitterBuffer(Generic[T]):
    """Releases items in sequence order; a lost packet is released as `(seq, None)`."""

    def __init__(self, depth: int = 3, max_gap: int = 50) -> None:
        self.depth = depth
        self.max_gap = max_gap  # a jump larger than this is a stream restart, not a loss
        self.stats = JitterStats()
        self._next: int | None = None  # extended (unwrapped) sequence number expected next
        self._held: dict[int, T] = {}

    def push(self, seq: int, item: T) -> list[tuple[int, T | None]]:
        """Add the packet with 16-bit sequence number `seq`; return what can now be played."""
        self.stats.received += 1
        if self._next is None:
            self._next = seq
        delta = ((seq - self._next + 0x8000) & 0xFFFF) - 0x8000
        ext = self._next + delta
        if delta > self.max_gap or delta < -self.max_gap:
            self.stats.resyncs += 1
            out = self.flush()
            self._next = ext
        elif delta < 0:
            self.stats.late += 1
            return []
        elif ext in self._held:
            self.stats.duplicates += 1
            return []
        else:
            out = []
        self._held[ext] = item
        return out + self._release()

    def flush(self) -> list[tuple[int, T | None]]:
        """Release everything held, in order, without inventing packets for the gaps."""
        out = [(ext & 0xFFFF, self._held[ext]) for ext in sorted(self._held)]
        if self._held:
            self._next = max(self._held) + 1
        self._held.clear()
        self.stats.released += len(out)
        return out

    def reset(self) -> None:
        """Forget the stream (new SSRC); the next packet starts a new sequence."""
        self._held.clear()
        self._next = None

    def _release(self) -> list[tuple[int, T | None]]:
        out: list[tuple[int, T | None]] = []
        assert self._next is not None
        while self._held:
            if self._next in self._held:
                out.append((self._next & 0xFFFF, self._held.pop(self._next)))
                self.stats.released += 1
            elif len(self._held) >= self.depth:
                out.append((self._next & 0xFFFF, None))
                self.stats.lost += 1
            else:
                break
            self._next += 1
        return out


def conceal(previous: np.ndarray | None, run: int, samples: int = FRAME_SAMPLES) -> np.ndarray:
    """Audio for the `run`-th lost packet in a row: the last good frame at half level, then silence.

    One repetition hides a single lost packet well; repeating longer turns into a buzz.
    """
    if run == 1 and previous is not None and len(previous):
        reps = -(-samples // len(previous))
        return (np.tile(previous, reps)[:samples] // 2).astype(np.int16)
    return np.zeros(samples, dtype=np.int16)


class Reframer:
    """Cuts decoded audio of any packet size into 160-sample (20 ms) frames."""

    def __init__(self, size: int = FRAME_SAMPLES) -> None:
        self.size = size
        self._pending = np.zeros(0, dtype=np.int16)

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        """Add decoded audio; return the whole frames now available."""
        if len(self._pending) == 0 and len(pcm) == self.size:
            return [pcm]
        data = np.concatenate([self._pending, pcm.astype(np.int16, copy=False)])
        whole = len(data) // self.size * self.size
        self._pending = data[whole:]
        return [data[i : i + self.size] for i in range(0, whole, self.size)]
