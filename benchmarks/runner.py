"""Dispatch `voxeron bench NAME [args]` to a benchmark module."""

from __future__ import annotations

import importlib

BENCHMARKS = {
    "turns": "benchmarks.turn_latency",
    "nlu": "benchmarks.nlu",
    "voice": "benchmarks.voice_calls",  # calls; `--offline-asr`: benchmarks.voice
    "edge": "benchmarks.edge",
    "sync": "benchmarks.sync",
    "cloud": "benchmarks.cloud",
}


def run_benchmark(name: str, args: list[str]) -> int:
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    return int(module.main(args))
