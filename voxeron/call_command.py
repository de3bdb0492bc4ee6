"""`voxeron call`: place one SIP call that says scripted lines, and print what happened."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from voxeron.caller import place_call
from voxeron.caller_voices import caller_voice


def run_call(uri: str, lines: list[str], *, wav: str | None = None, voice: str = "piper") -> int:
    tts = caller_voice(voice)
    t0 = time.monotonic()

    def on_event(kind: str, text: str, t: float) -> None:
        print(f"[{t - t0:6.2f}s] {kind}: {text}", flush=True)

    report = asyncio.run(place_call(uri, lines, tts=tts, on_event=on_event,
                                    wav_path=Path(wav) if wav else None))
    print(report.model_dump_json(indent=2))
    return 0 if report.status_code == 200 else 1
