"""Speech / non-speech per 20 ms frame with WebRTC's VAD: the one module importing webrtcvad.

The classifier's model is compiled into its wheel (webrtcvad-wheels), so nothing is
downloaded. It tells voice from hiss and hum far better than an energy threshold, which
matters on an ATA line with comfort noise. It only classifies; the Endpointer decides where
an utterance starts and ends.
"""

from __future__ import annotations

import numpy as np
import webrtcvad

RATE = 8000
FRAME_SAMPLES = RATE * 20 // 1000  # 20 ms


class WebRtcVad:
    """WebRTC VAD at 8 kHz; aggressiveness 0 (keeps most audio as speech) to 3 (strictest)."""

    def __init__(self, aggressiveness: int = 2) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"VAD aggressiveness must be 0, 1, 2 or 3, not {aggressiveness!r}")
        self.aggressiveness = aggressiveness
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: np.ndarray) -> bool:
        """Whether one 20 ms frame of 8 kHz int16 audio holds speech."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"the VAD takes 20 ms frames of {FRAME_SAMPLES} samples at 8 kHz, "
                             f"not shape {frame.shape}")
        return bool(self._vad.is_speech(frame.astype(np.int16).tobytes(), RATE))
