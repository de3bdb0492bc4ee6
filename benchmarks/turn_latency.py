"""Agent turn latency over whole phone calls on the real demo stack.

Places N scripted calls (real SIP/RTP, Whisper tiny.en, Piper) and prints, per agent
turn: box latency (caller's utterance endpointed -> first agent audio handed to RTP) and
voice-to-voice latency measured at the caller (end of caller audio -> agent audio back,
which includes the endpointing silence). Run: `voxeron bench turns --calls 5`.
"""

from __future__ import annotations

import argparse
import asyncio
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
    args = ap.parse_args(argv)
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
        for _ in range(args.calls):
            report = asyncio.run(converse(stack, DemoOptions(work, caller_voice=args.voice)))
            caller_ms += [t.latency_ms for t in report.turns if t.latency_ms is not None]
        store = LocalStore(stack.box_db)
        box_ms = [t.latency_ms for c in store.calls(args.calls) for t in store.turns(c)
                  if t.speaker == "agent" and t.latency_ms]
        ok_calls = len(store.orders(args.calls))
        store.close()
    finally:
        sup.stop_all()
    print(f"calls: {args.calls}, confirmed orders: {ok_calls}, voice: {args.voice}, "
          f"wall: {time.monotonic() - t0:.1f}s")
    print(summary("box turn latency (endpointed -> first audio)", box_ms))
    print(summary("voice-to-voice at the caller", caller_ms))
    return 0 if ok_calls == args.calls else 1
