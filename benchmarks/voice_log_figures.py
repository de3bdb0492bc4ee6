"""Per-call figures from voxeron-voice's JSON log lines: ASR and TTS real-time factors.

The log says per turn what it heard ("caller said": asr_ms from end of utterance to text,
and whether a speculative decode had it already) and what it said ("agent says"). Where it
also carries the audio length and compute time (`audio_ms` with `decode_ms` / `tts_ms`), the
factors are exact; otherwise the ASR factor is estimated from final (non-speculative)
decodes over the caller's own line lengths, and there is no TTS factor from the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CallLog:
    """What voxeron-voice logged for one call."""

    call_id: str
    sip_call_id: str = ""
    heard: list[dict[str, object]] = field(default_factory=list)  # "caller said" lines
    said: list[dict[str, object]] = field(default_factory=list)  # "agent says" lines
    barge_ins: int = 0


def read_voice_log(path: Path) -> dict[str, CallLog]:
    """Call logs by SIP Call-ID (the id the caller knows); lines that are not JSON are skipped."""
    calls: dict[str, CallLog] = {}
    if not path.exists():
        return {}
    for raw in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        call_id = entry.get("call_id") if isinstance(entry, dict) else None
        if not isinstance(call_id, str):
            continue
        log = calls.setdefault(call_id, CallLog(call_id))
        msg = entry.get("msg")
        if msg == "incoming call":
            log.sip_call_id = str(entry.get("sip_call_id", ""))
        elif msg == "caller said":
            log.heard.append(entry)
        elif msg == "agent says":
            log.said.append(entry)
        elif msg == "caller barged in":
            log.barge_ins += 1
    return {c.sip_call_id: c for c in calls.values() if c.sip_call_id}


def _num(entry: dict[str, object], key: str) -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class Rtf:
    """Compute seconds over audio seconds, and whether it was measured or estimated."""

    compute_s: float = 0.0
    audio_s: float = 0.0
    samples: int = 0
    exact: bool = True

    @property
    def value(self) -> float | None:
        return self.compute_s / self.audio_s if self.audio_s > 0 else None

    def add(self, compute_ms: float, audio_ms: float, exact: bool) -> None:
        self.compute_s += compute_ms / 1000
        self.audio_s += audio_ms / 1000
        self.samples += 1
        self.exact = self.exact and exact


def asr_rtf(logs: Iterable[tuple[CallLog, list[float]]]) -> Rtf:
    """ASR factor over calls, each with its caller lines' lengths in seconds."""
    rtf = Rtf()
    for log, line_s in logs:
        exact_known = [h for h in log.heard if _num(h, "decode_ms") is not None
                       and _num(h, "audio_ms") is not None]
        if exact_known:
            for h in exact_known:
                rtf.add(_num(h, "decode_ms") or 0.0, _num(h, "audio_ms") or 0.0, True)
            continue
        texts = [h for h in log.heard if h.get("text")]
        if len(texts) != len(line_s):  # an utterance split or lost: lines do not pair up
            continue
        for h, seconds in zip(texts, line_s, strict=True):
            asr_ms = _num(h, "asr_ms")
            if asr_ms is not None and not h.get("speculative"):
                rtf.add(asr_ms, seconds * 1000, False)
    return rtf


def tts_rtf(logs: Iterable[CallLog]) -> Rtf:
    """TTS factor from "agent says" lines that carry `tts_ms` and `audio_ms` (else empty)."""
    rtf = Rtf()
    for log in logs:
        for s in log.said:
            tts_ms, audio_ms = _num(s, "tts_ms"), _num(s, "audio_ms")
            if tts_ms is not None and audio_ms is not None:
                rtf.add(tts_ms, audio_ms, True)
    return rtf
