"""One call's recogniser: the routing decision's ASR providers, failing over in order.

When the current provider dies (its worker crashed, hung or cannot start) the same audio is
decoded again by the next provider in the decision, so the caller's turn is never lost;
past the last one it wraps to the first, whose worker the pool has restarted by then.
Each switch is handed to `on_failover` (the session records it and logs it with its ids).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from appliance.voice.asr_process import AsrWorker, SerialAsr, WorkerBusy
from appliance.voice.asr_whisper import Transcript
from appliance.voice.providers import AsrProvider, ProviderDied, ProviderError


class Failover(BaseModel):
    """One switch of provider during a call."""

    from_provider: str
    to_provider: str
    error: str
    at_turn: int


Resolve = Callable[[str], AsrProvider]  # provider name -> loaded engine (AsrPool.get)


class FailoverAsr:
    """Decodes with the first working provider of `order`; thread-safe, blocking."""

    def __init__(self, order: list[str], resolve: Resolve,
                 on_failover: Callable[[Failover], None] | None = None,
                 on_decoded: Callable[[str, float], None] | None = None) -> None:
        if not order:
            raise ValueError("a call needs at least one ASR provider")
        self.order, self._resolve, self._on_failover = list(order), resolve, on_failover
        # (provider, audio seconds) of each final decode: the call's usage for cost tracking;
        # speculative decodes are the box's own latency trick and are not counted.
        self._on_decoded = on_decoded
        self.index = 0
        self.turn = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        return self.order[self.index]

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "", *, speculative: bool = False) -> Transcript:
        """The transcript of `pcm8k`; a speculative decode never waits for a busy worker
        (raises WorkerBusy) and, when its provider died, fails over and raises."""
        tried = 0
        while True:
            name = self.current
            try:
                engine = self._resolve(name)
                if speculative and isinstance(engine, AsrWorker | SerialAsr):
                    return engine.transcribe(pcm8k, prompt, wait=False)
                text = engine.transcribe(pcm8k, prompt)
                if self._on_decoded is not None and not speculative:
                    self._on_decoded(name, len(pcm8k) / 8000)
                return text
            except WorkerBusy:
                raise
            except ProviderError as err:
                if err.retryable and not isinstance(err, ProviderDied):
                    raise  # a bad decode, not a dead provider: the next turn may do better
                if speculative:  # move on for the final decode, but do not decode again now
                    self._advance(name, err)
                    raise
                tried += 1
                if tried > len(self.order):  # every provider failed this very utterance
                    raise
                self._advance(name, err)

    def _advance(self, failed: str, err: ProviderError) -> None:
        with self._lock:
            if self.current != failed:  # another thread already moved on
                return
            self.index = (self.index + 1) % len(self.order)
            event = Failover(from_provider=failed, to_provider=self.current, error=str(err),
                             at_turn=self.turn)
        if self._on_failover is not None:
            self._on_failover(event)
