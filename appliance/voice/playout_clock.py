"""Send-side timing of RTP: when each 20 ms packet is due and what timestamp it carries.

Pure (the caller passes loop time in). Deadlines are absolute (start + n x 20 ms), so the
scheduling error of one sleep never accumulates into drift; after a long stall the
schedule skips ahead instead of bursting the backlog onto the wire.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PacketTiming:
    """RTP timestamp and marker bit of the packet about to be sent."""

    timestamp: int
    marker: bool


class PlayoutClock:
    """Deadlines and RTP timestamps for one outgoing stream, talkspurt by talkspurt."""

    def __init__(self, timestamp: int, frame_s: float = 0.02, samples: int = 160,
                 max_lag_s: float = 0.1) -> None:
        self.frame_s = frame_s
        self.samples = samples
        self.max_lag_s = max_lag_s
        self._timestamp = timestamp & 0xFFFFFFFF  # timestamp of the next packet
        self._start = 0.0
        self._count = 0
        self._last_sent: float | None = None
        self._marker = False

    def start_talkspurt(self, now: float) -> None:
        """Audio resumes after a pause: restart the schedule at `now` and set the marker bit.

        The timestamp jumps by the silent time, as if the pause had been sent (RFC 3551 4.1).
        """
        if self._last_sent is not None:
            skipped = round((now - self._last_sent) / self.frame_s) - 1
            if skipped > 0:
                self._timestamp = (self._timestamp + skipped * self.samples) & 0xFFFFFFFF
        self._start, self._count, self._marker = now, 0, True

    def mark_talkspurt(self) -> None:
        """Audio starts within a continuous stream (comfort silence before): marker only."""
        self._marker = True

    @property
    def due(self) -> float:
        """Loop time at which the next packet should go out."""
        return self._start + self._count * self.frame_s

    def next_packet(self, now: float) -> PacketTiming:
        """Timing of the packet sent at `now`; advances the schedule by one frame."""
        if now - self.due > self.max_lag_s:  # stalled: skip ahead rather than burst
            self._start = now - self._count * self.frame_s
        timing = PacketTiming(self._timestamp, self._marker)
        self._marker = False
        self._timestamp = (self._timestamp + self.samples) & 0xFFFFFFFF
        self._count += 1
        self._last_sent = now
        return timing
