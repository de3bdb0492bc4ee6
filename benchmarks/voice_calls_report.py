"""What `voxeron bench voice` prints and writes: tables per voice and noise, targets, sweep, JSONL."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.store import LocalStore
from benchmarks.nlu import percentile
from benchmarks.voice_log_figures import Rtf, asr_rtf, tts_rtf

if TYPE_CHECKING:
    from benchmarks.voice_calls import CallRecord

# Issue 6's targets on this 2-core machine (ms, and % exact).
TARGETS = {"turn_p50": 500.0, "turn_p95": 800.0, "greeting": 300.0, "barge": 150.0, "exact": 90.0}


def _p(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}" if values else "-"


def turns_of(records: list[CallRecord]) -> list[float]:
    return [t for r in records for t in r.outcome.timings.turn_ms if t is not None]


def table(records: list[CallRecord], group: str) -> list[str]:
    """One row per `group` value (voice or noise) and an overall row."""
    head = (f"{group:<18}{'n':>4}{'turn p50':>10}{'turn p95':>10}{'greet p50':>10}"
            f"{'greet p95':>10}{'barge p50':>10}{'barge p95':>10}{'barge n':>8}{'exact %':>9}"
            f"{'exact* %':>9}{'no reply':>9}")
    out = [head]

    def key_of(r: CallRecord) -> str:
        return r.job.voice if group == "voice" else ("kitchen" if r.job.noise else "clean")

    for key in [*dict.fromkeys(key_of(r) for r in records), "overall"]:
        rs = [r for r in records if key in ("overall", key_of(r))]
        turns = turns_of(rs)
        greet = [r.outcome.timings.greeting_ms for r in rs if r.outcome.timings.greeting_ms is not None]
        barge = [r.outcome.timings.barge_ms for r in rs if r.outcome.timings.barge_ms is not None]
        scored = [r for r in rs if r.exact is not None]
        exact = 100 * sum(bool(r.exact) for r in scored) / len(scored) if scored else 0.0
        said = 100 * sum(bool(r.exact_said) for r in scored) / len(scored) if scored else 0.0
        missing = sum(t is None for r in rs for t in r.outcome.timings.turn_ms)
        out.append(f"{key:<18}{len(rs):>4}{_p(turns, 50):>10}{_p(turns, 95):>10}{_p(greet, 50):>10}"
                   f"{_p(greet, 95):>10}{_p(barge, 50):>10}{_p(barge, 95):>10}{len(barge):>8}"
                   f"{exact:>9.1f}{said:>9.1f}{missing:>9}")
    return out


def offline_tts_rtf(db: Path, limit: int = 30) -> Rtf:
    """Piper in this process over the agent's own prompts of the run (no call load)."""
    from appliance.voice.tts_piper import PiperTts

    store = LocalStore(db)
    try:
        texts = list(dict.fromkeys(t.text for c in store.calls(1000) for t in store.turns(c)
                                   if t.speaker == "agent"))[:limit]
    finally:
        store.close()
    tts, rtf = PiperTts(), Rtf(exact=True)
    tts.load()
    for text in texts:
        t0 = time.perf_counter()
        pcm = tts.synthesize(text)
        rtf.add((time.perf_counter() - t0) * 1000, len(pcm) / 8, True)
    return rtf


def _rtf_text(rtf: Rtf, how: str) -> str:
    if rtf.value is None:
        return "n/a"
    return f"{rtf.value:.3f} ({rtf.samples} {how}{'' if rtf.exact else ', estimated'})"


def write_output(path: Path, records: list[CallRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for r in records:
            t = r.outcome.timings
            row: dict[str, Any] = {
                "src": r.job.src, "pred_exr": r.pred_exr, "voice": r.job.voice,
                "noise": "kitchen_15db" if r.job.noise else "clean", "barge_at": r.job.barge,
                "pred_exr_said": r.pred_exr_said, "gold_exr": r.job.gold, "exact": r.exact,
                "exact_said": r.exact_said, "concurrency": r.concurrency,
                "greeting_ms": t.greeting_ms, "turn_ms": t.turn_ms, "barge_ms": t.barge_ms,
                "heard": [h.get("text") for h in (r.log.heard if r.log else [])],
                "box_barge_ins": r.log.barge_ins if r.log else None,
                "hangup": r.outcome.hangup, "sip_status": r.outcome.status, "notes": r.notes}
            fh.write(json.dumps(row) + "\n")


def _verdict(name: str, value: float | None, target: float, higher_better: bool = False) -> str:
    if value is None:
        return f"{name}: no samples (target {target:g})"
    ok = value >= target if higher_better else value <= target
    return f"{name}: {value:.0f} (target {'>=' if higher_better else '<='} {target:g}) {'MET' if ok else 'MISSED'}"


def print_report(single: list[CallRecord], levels: list[tuple[int, list[CallRecord]]], db: Path,
                  args: argparse.Namespace, wall_s: float) -> None:
    print(f"\nvoice calls: {len(single)} calls from {args.input.name}, one at a time, G.711 PCMU, "
          f"kitchen noise 15 dB SNR on {args.noise_share:.0%}, barge-in on {args.barge_share:.0%}; "
          f"wall {wall_s:.0f}s; times in ms")
    print("\n".join(table(single, "voice")))
    print()
    print("\n".join(table(single, "noise")))
    pairs = [(r.log, r.outcome.line_s) for r in single if r.log is not None]
    asr = asr_rtf(pairs)
    tts = tts_rtf(r.log for r in single if r.log is not None)
    print(f"\nASR RTF: {_rtf_text(asr, 'final decodes from the voice log')}")
    if tts.value is None:
        tts = offline_tts_rtf(db)
        print(f"TTS RTF: {_rtf_text(tts, 'agent prompts re-synthesized by the bench, not from the log')}")
    else:
        print(f"TTS RTF: {_rtf_text(tts, 'prompts from the voice log')}")
    turns = turns_of(single)
    greet = [r.outcome.timings.greeting_ms for r in single if r.outcome.timings.greeting_ms is not None]
    barge = [r.outcome.timings.barge_ms for r in single if r.outcome.timings.barge_ms is not None]
    scored = [r for r in single if r.exact is not None]
    exact = 100 * sum(bool(r.exact) for r in scored) / len(scored) if scored else None
    print(_verdict("turn p50 (1 call)", percentile(turns, 50) if turns else None, TARGETS["turn_p50"]))
    print(_verdict("turn p95 (1 call)", percentile(turns, 95) if turns else None, TARGETS["turn_p95"]))
    print(_verdict("greeting p95", percentile(greet, 95) if greet else None, TARGETS["greeting"]))
    print(_verdict("barge-in p95", percentile(barge, 95) if barge else None, TARGETS["barge"]))
    print(_verdict("exact orders %", exact, TARGETS["exact"], higher_better=True))
    said = 100 * sum(bool(r.exact_said) for r in scored) / len(scored) if scored else None
    print(_verdict("exact* orders % (box-filled sizes set aside)", said, TARGETS["exact"],
                   higher_better=True))
    if levels:
        print(f"\nconcurrency sweep (budget: turn p95 <= {args.budget_ms:g} ms)")
        print(f"{'calls at once':<15}{'calls':>6}{'turns':>7}{'turn p50':>10}{'turn p95':>10}"
              f"{'exact %':>9}  within budget")
        best = previous = 0
        for level, recs in levels:
            t = turns_of(recs)
            sc = [r for r in recs if r.exact is not None]
            ex = 100 * sum(bool(r.exact) for r in sc) / len(sc) if sc else 0.0
            ok = bool(t) and percentile(t, 95) <= args.budget_ms
            best = level if ok and best == previous else best
            previous = level
            print(f"{level:<15}{len(recs):>6}{len(t):>7}{_p(t, 50):>10}{_p(t, 95):>10}{ex:>9.1f}  "
                  f"{'yes' if ok else 'no'}")
        print(f"most concurrent calls within budget: {best}")
    misses = [r for r in single if r.exact is False][:5]
    for r in misses:
        print(f"MISS [{r.job.voice}] {r.job.src}\n  heard {[h.get('text') for h in (r.log.heard if r.log else [])][:1]}"
              f"\n  pred  {r.pred_exr}\n  gold  {r.job.gold}")
    print(f"\nper-call results: {args.output}")
