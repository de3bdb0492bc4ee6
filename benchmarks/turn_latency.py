"""Agent turn latency over whole phone calls on the real demo stack.

Places N scripted calls (real SIP/RTP, Whisper tiny.en, Piper) and prints, per agent
turn: box latency (caller's utterance endpointed -> first agent audio handed to RTP) and
voice-to-voice latency measured at the caller (end of caller audio -> agent audio back,
which includes the endpointing silence). Run: `voxeron bench turns --calls 5`; add
`--concurrent 4` to place the calls four at a time, `--no-speculation` for the baseline
without speculative decoding and early endpointing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import time
from pathlib import Path

from appliance.store import LocalStore
from voxeron.demo import DemoOptions, converse, start_stack, wait_ready
from voxeron.supervisor import Supervisor


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    return (f"{name}: n={len(values)} p50={percentile(values, 50):.0f} ms "
            f"p90={percentile(values, 90):.0f} ms p99={percentile(values, 99):.0f} ms "
            f"mean={statistics.fmean(values):.0f} ms")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="voxeron bench turns")
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--voice", default="piper", choices=["piper", "espeak", "flite"])
    ap.add_argument("--dir", default="var/bench-turns")
    ap.add_argument("--concurrent", type=int, default=1, help="calls in flight at once")
    ap.add_argument("--no-speculation", action="store_true",
                    help="final decode only (VOXERON_VOICE_ASR_SPECULATION=false)")
    args = ap.parse_args(argv)
    if args.calls < 1 or not 1 <= args.concurrent <= 8:
        ap.error("--calls must be >= 1 and --concurrent between 1 and 8")
    # The box inherits the environment (Supervisor): room for the concurrent calls.
    os.environ["VOXERON_VOICE_MAX_CALLS"] = str(max(2, args.concurrent))
    os.environ["VOXERON_VOICE_ASR_SPECULATION"] = "false" if args.no_speculation else "true"
    work = Path(args.dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sup = Supervisor()
    caller_ms: list[float] = []
    ok_calls = 0
    t0 = time.monotonic()
    try:
        stack = start_stack(sup, work)
        missing = wait_ready(sup, stack)
        if missing:
            print(f"stack not ready: {missing}")
            return 1
        for start in range(0, args.calls, args.concurrent):
            batch = min(args.concurrent, args.calls - start)
            for report in asyncio.run(_batch(stack, work, args.voice, batch)):
                caller_ms += [t.latency_ms for t in report.turns if t.latency_ms is not None]
        store = LocalStore(stack.box_db)
        box_ms = [t.latency_ms for c in store.calls(args.calls) for t in store.turns(c)
                  if t.speaker == "agent" and t.latency_ms]
        ok_calls = len(store.orders(args.calls))
        store.close()
    finally:
        sup.stop_all()
    print(f"calls: {args.calls} ({args.concurrent} at a time), confirmed orders: {ok_calls}, "
          f"voice: {args.voice}, speculation: {not args.no_speculation}, "
          f"wall: {time.monotonic() - t0:.1f}s")
    print(summary("box turn latency (endpointed -> first audio)", box_ms))
    print(summary("voice-to-voice at the caller", caller_ms))
    print(f"box turn latency p95: {percentile(box_ms, 95):.0f} ms" if box_ms else "")
    return 0 if ok_calls == args.calls else 1


async def _batch(stack, work: Path, voice: str, n: int) -> list:  # type: ignore[no-untyped-def,type-arg]
    """`n` scripted calls placed at once (each its own caller, RTP port and SIP dialog)."""
    return list(await asyncio.gather(*(converse(stack, DemoOptions(work, caller_voice=voice))
                                       for _ in range(n))))
