"""Speech and language providers as the call sees them: typed protocols, descriptors, health.

Routing picks engines by what they promise (languages, domains, speed, cost, tier, noise
robustness) and by how they are doing right now, so both live here as data. Engines stay
in their own adapter modules (asr_whisper, asr_pocketsphinx, tts_piper, the rule dialog);
a call never touches a third-party library through this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import numpy as np
from pydantic import BaseModel, Field

from appliance.voice.asr_whisper import Transcript


class ProviderKind(StrEnum):
    ASR = "asr"
    TTS = "tts"
    NLU = "nlu"


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"  # answering, but slowly or after errors: used only after healthy ones
    DEAD = "dead"  # not answering: never routed to until it is healthy again


TIERS: tuple[str, ...] = ("basic", "standard", "premium")


class ProviderDescriptor(BaseModel):
    """What an engine promises; figures come from `voxeron bench voice` on the 2-core box."""

    name: str
    kind: ProviderKind
    languages: list[str] = Field(min_length=1)
    domains: list[str] = Field(default_factory=list, description="sectors it suits; empty = any")
    rtf: float = Field(ge=0, description="decode or synthesis seconds per audio second")
    latency_ms: int = Field(ge=0, description="added latency for a 3 s utterance after it ends")
    quality: float = Field(ge=0, le=1, description="1 - WER on a clean phone line (menu prompt)")
    noise_robustness: float = Field(ge=0, le=1, description="share of quality kept at 10-20 dB SNR")
    cost_per_audio_s: float = Field(default=0.0, ge=0)
    cost_per_1k_tokens: float = Field(default=0.0, ge=0)
    min_tier: str = Field(default="basic", pattern="^(basic|standard|premium)$")
    streaming: bool = False
    in_process: bool = True  # False: runs in a worker process (asr_process) so a crash is contained


class ProviderHealth(BaseModel):
    """Live state of one provider as the voice service last saw it."""

    name: str
    state: Health = Health.HEALTHY
    last_error: str = ""
    since: datetime | None = None
    failures: int = 0


class ProviderError(RuntimeError):
    """A provider could not answer; `retryable` says whether another try may help."""

    def __init__(self, provider: str, code: str, message: str, retryable: bool = True) -> None:
        super().__init__(f"{provider}: {code}: {message}")
        self.provider, self.code, self.message, self.retryable = provider, code, message, retryable


class ProviderDied(ProviderError):
    """The provider's process is gone (EOF, exit code or no answer in time): fail over."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(provider, "provider_died", message, retryable=False)


class ProviderUnavailable(ProviderError):
    """The provider cannot be started here (engine or model not installed)."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(provider, "provider_unavailable", message, retryable=False)


class AsrProvider(Protocol):
    """Final recognition of one utterance; `transcribe` blocks (run it in a thread)."""

    def load(self) -> None: ...

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "") -> Transcript: ...


class TtsProvider(Protocol):
    """Speech for the agent, one 8 kHz int16 array per sentence so playback starts early."""

    def load(self) -> None: ...

    def sentences(self, text: str) -> Iterator[np.ndarray]: ...


class NluProvider(Protocol):
    """Turns a final transcript into dialog actions (the rule engine: Conversation)."""

    def on_utterance(self, text: str, now: datetime, confidence: float = 1.0) -> list[object]: ...


# Figures from /work/shared/notes/speech-probe.md (Piper caller + menu prompt, 8 kHz G.711).
# llama-cpp cannot be installed here, so the NLU slot holds the rule engine only.
BUILTIN: tuple[ProviderDescriptor, ...] = (
    ProviderDescriptor(name="whisper-tiny.en", kind=ProviderKind.ASR, languages=["en"], rtf=0.10,
                       latency_ms=350, quality=0.95, noise_robustness=0.6, in_process=False),
    ProviderDescriptor(name="whisper-base", kind=ProviderKind.ASR, languages=["en"], rtf=0.15,
                       latency_ms=520, quality=0.96, noise_robustness=0.75, min_tier="standard",
                       in_process=False),
    ProviderDescriptor(name="pocketsphinx", kind=ProviderKind.ASR, languages=["en"], rtf=0.05,
                       latency_ms=5, quality=0.82, noise_robustness=0.4, streaming=True),
    ProviderDescriptor(name="piper-joe", kind=ProviderKind.TTS, languages=["en"], rtf=0.024,
                       latency_ms=70, quality=0.9, noise_robustness=1.0),
    ProviderDescriptor(name="rule-nlu", kind=ProviderKind.NLU, languages=["en"], rtf=0.0,
                       latency_ms=2, quality=0.99, noise_robustness=1.0),
)


class ProviderRegistry:
    """Descriptors and live health of the providers one voice process can use."""

    def __init__(self, descriptors: tuple[ProviderDescriptor, ...] = BUILTIN) -> None:
        self.descriptors = {d.name: d for d in descriptors}
        self.health = {d.name: ProviderHealth(name=d.name) for d in descriptors}

    def of_kind(self, kind: ProviderKind) -> list[ProviderDescriptor]:
        return [d for d in self.descriptors.values() if d.kind is kind]

    def states(self) -> dict[str, Health]:
        return {name: h.state for name, h in self.health.items()}

    def mark(self, name: str, state: Health, now: datetime, error: str = "") -> ProviderHealth:
        """Record what a call or the worker supervisor just saw of provider `name`."""
        old = self.health.get(name) or ProviderHealth(name=name)
        failures = old.failures + 1 if state is not Health.HEALTHY else 0
        new = ProviderHealth(name=name, state=state, last_error=error or old.last_error,
                             since=now if state is not old.state else old.since, failures=failures)
        self.health[name] = new
        return new
