"""`voxeron bench voice`: real SIP calls with caller voices unlike the agent's, scored end to end.

Each call speaks one PIZZA dev utterance as its order, then "no that's all", then "yes",
over G.711 PCMU to the box's real voice process (Whisper, dialog, Piper) and edge; some
calls carry a kitchen noise bed at 15 dB SNR, some talk over the greeting or the read-back.
It prints per voice and overall: turn latency (end of caller speech -> first agent RTP
packet) p50/p95, greeting (ACK -> first agent packet), barge-in stop (caller onset -> last
agent packet), ASR/TTS real-time factors, and spoken-order exact match of the confirmed
order in the box store against the gold EXR tree (unordered, as `bench nlu`); writes
{"src", "pred_exr", "voice", "noise", ...} per call. `--concurrency 4` then sweeps 1, 2, 4
calls at once and prints the most that keep p95 within `--budget-ms`. `--offline-asr` runs
the older offline ASR table (benchmarks/voice.py) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from appliance.store import LocalStore
from appliance.voice.asr_prompt import menu_prompt
from benchmarks.bench_call import CallOutcome, place_bench_call
from benchmarks.caller_audio import NoiseBed, caller_line
from benchmarks.duplex_script import BargeAt, DuplexScript
from benchmarks.exr import ExrError, read_exr, same_tree
from benchmarks.nlu import DEFAULT_CATALOGS, percentile
from benchmarks.stored_order_exr import UnknownName, order_exr, without_filled_sizes
from benchmarks.voice_calls_report import print_report, turns_of, write_output
from benchmarks.voice_log_figures import CallLog, read_voice_log
from blueprints.catalog_import import pizza_overlay
from blueprints.menu import Menu
from voxeron.caller_voices import BENCH_VOICES, caller_voice
from voxeron.ports import free_port, sip_options_ok, wait_tcp
from voxeron.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO / ".." / "shared" / "data" / "pizza" / "PIZZA_dev.json"
CLOSING = ("no that's all", "yes")


@dataclass
class CallJob:
    """One call to place: what the caller says, in which voice, with what around it."""

    index: int
    src: str
    gold: str | None
    voice: str
    noise: bool
    barge: BargeAt

    @property
    def caller_id(self) -> str:
        return f"555{self.index:07d}"  # the From user: finds the call's order in the store


@dataclass
class CallRecord:
    """A placed call with what it measured and what the box confirmed."""

    job: CallJob
    outcome: CallOutcome
    concurrency: int
    pred_exr: str = "(ORDER )"
    exact: bool | None = None
    pred_exr_said: str = "(ORDER )"  # box-filled sizes set aside (stored_order_exr.without_filled_sizes)
    exact_said: bool | None = None
    log: CallLog | None = None
    notes: list[str] = field(default_factory=list)


def read_rows(path: Path) -> list[tuple[str, str | None]]:
    """(utterance, gold EXR or None) per JSON line: 'src'/'exr' or the split's 'dev.SRC'/'dev.EXR'."""
    if not path.exists():
        raise SystemExit(f"--input {path}: no such file")
    out: list[tuple[str, str | None]] = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise SystemExit(f"--input {path}:{n}: not JSON ({err})") from err
        src = row.get("src") or next((v for k, v in row.items() if k.endswith(".SRC")), None)
        if not isinstance(src, str) or not src.strip():
            print(f"skipping {path}:{n}: no 'src'")
            continue
        gold = row.get("exr") or next((v for k, v in row.items() if k.endswith(".EXR")), None)
        out.append((src, None if gold is None else str(gold)))
    return out


def _spread(i: int, share: float) -> bool:
    """Whether item i is in a `share` of items spread evenly (0.3 -> 3 in every 10)."""
    return int((i + 1) * share) > int(i * share)


def plan_jobs(rows: list[tuple[str, str | None]], voices: list[str], noise_share: float,
              barge_share: float, first: int = 0) -> list[CallJob]:
    """Voices in turn; noise and barge-in on evenly spread shares (barge-in alternates between
    the greeting and the read-back)."""
    jobs = []
    barges = 0
    for k, (src, gold) in enumerate(rows):
        i = first + k
        barge: BargeAt = "none"
        if _spread(i + 5, barge_share):  # offset: noise and barge-in fall on different calls
            barge = "greeting" if barges % 2 == 0 else "readback"
            barges += 1
        jobs.append(CallJob(i, src, gold, voices[i % len(voices)], _spread(i, noise_share), barge))
    return jobs


def ensure_packages(voices: list[str]) -> None:
    """Install the Debian packages the chosen voices need (as root, like scripts/bootstrap.sh)."""
    need = sorted({p for v in voices for p in BENCH_VOICES.get(v, ())})
    missing = [p for p in need if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True,
        check=False).stdout.find("install ok installed") < 0]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"caller voices need Debian packages: apt-get install -y {' '.join(missing)}")
    print(f"installing Debian packages for the caller voices: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                   check=True, capture_output=True, env=env)


def write_overlay(catalogs: Path, out: Path) -> tuple[Path, Menu]:
    """The PIZZA catalogs' tenant overlay (with a menu-word ASR prompt) as YAML in the work
    dir (never in the repository: the catalogs' licence), and its menu."""
    doc = pizza_overlay(catalogs)
    menu = Menu.model_validate(doc["menu"])
    doc["asr_hints"] = menu_prompt(menu)  # as the offline loop (benchmarks/voice.py) measures it
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out, menu


def synthesize(jobs: list[CallJob]) -> dict[tuple[str, str], np.ndarray]:
    """Every line of every call, per voice, trimmed and levelled (before the box starts)."""
    audio: dict[tuple[str, str], np.ndarray] = {}
    for voice in dict.fromkeys(j.voice for j in jobs):
        tts = caller_voice(voice)
        for text in [*(j.src for j in jobs if j.voice == voice), *CLOSING]:
            if (voice, text) not in audio:
                audio[voice, text] = caller_line(np.asarray(tts.synthesize(text)))
    return audio


@dataclass
class Box:
    """The box processes under test (voice, edge) and the printer they print to."""

    work: Path
    sip_port: int

    @property
    def db(self) -> Path:
        return self.work / "box" / "box.sqlite3"

    @property
    def voice_log(self) -> Path:
        return self.work / "box" / "logs" / "voice.log"


def start_box(sup: Supervisor, work: Path, overlay: Path, max_calls: int) -> Box:
    logs = work / "box" / "logs"
    sip_port, printer_port = free_port(), free_port()
    sup.start("printer", ["printer-emulator", "--port", str(printer_port), "--out",
                          str(work / "tickets")], logs / "printer.log")
    env = {"VOXERON_DATA_DIR": str(work / "box"), "VOXERON_VOICE_SIP_HOST": "127.0.0.1",
           "VOXERON_VOICE_SIP_PORT": str(sip_port), "VOXERON_VOICE_RTP_HOST": "127.0.0.1",
           "VOXERON_VOICE_TENANT_OVERLAY": str(overlay),
           "VOXERON_VOICE_MAX_CALLS": str(max(2, max_calls)),
           "VOXERON_TEST_CALL_ENABLED": "false",
           "VOXERON_PRINTER_URL": f"tcp://127.0.0.1:{printer_port}"}
    sup.start("voice", ["appliance", "voice"], logs / "voice.log", env)
    sup.start("edge", ["appliance", "edge"], logs / "edge.log", env)
    if not wait_tcp(printer_port, 30) or not sip_options_ok(sip_port, 180):
        dead = ", ".join(c.name for c in sup.dead())
        raise SystemExit(f"box not ready{f' ({dead} exited)' if dead else ''}; see {logs}")
    return Box(work, sip_port)


async def run_calls(box: Box, jobs: list[CallJob], audio: dict[tuple[str, str], np.ndarray],
                    concurrency: int, stagger_s: float = 2.0) -> list[CallRecord]:
    """Place `jobs` with `concurrency` calls in flight (each slot calls back to back)."""
    queue: asyncio.Queue[CallJob] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    records: list[CallRecord] = []

    async def slot(n: int) -> None:
        await asyncio.sleep(n * stagger_s)
        while not queue.empty():
            job = queue.get_nowait()
            lines = [audio[job.voice, job.src], *(audio[job.voice, t] for t in CLOSING)]
            noise = await asyncio.to_thread(NoiseBed.kitchen, 15.0, job.index) if job.noise else None
            script = DuplexScript(lines=len(lines), barge_at=job.barge,
                                  barge_after_s=1.0 if job.barge == "greeting" else 1.5)
            outcome = await place_bench_call(f"sip:order@127.0.0.1:{box.sip_port}", lines, script,
                                             noise=noise, caller_id=job.caller_id)
            records.append(CallRecord(job, outcome, concurrency))
            print(f"  call {job.index:3d} {job.voice:<17} {'kitchen' if job.noise else 'clean':<8}"
                  f"barge={job.barge:<9} turns={outcome.timings.turn_ms} {outcome.hangup}",
                  flush=True)

    await asyncio.gather(*(slot(n) for n in range(concurrency)))
    return sorted(records, key=lambda r: r.job.index)


def score(records: list[CallRecord], box: Box, menu: Menu) -> None:
    """Fill each record's confirmed order (from the store), exact match and voice log."""
    store = LocalStore(box.db)
    try:
        orders = {o.caller: o for o in reversed(store.orders(100_000)) if o.caller}
    finally:
        store.close()
    logs = read_voice_log(box.voice_log)
    for r in records:
        r.log = logs.get(r.outcome.sip_call_id)
        order = orders.get(r.job.caller_id)
        heard = " ".join(str(h.get("text", "")) for h in (r.log.heard if r.log else []))
        try:
            r.pred_exr = order_exr(order, menu)
            r.pred_exr_said = order_exr(without_filled_sizes(order, menu, heard), menu)
        except UnknownName as err:
            r.notes.append(str(err))
        if r.job.gold is not None:
            try:
                gold = read_exr(r.job.gold)
                r.exact = same_tree(read_exr(r.pred_exr), gold)
                r.exact_said = same_tree(read_exr(r.pred_exr_said), gold)
            except ExrError as err:
                r.exact = r.exact_said = False
                r.notes.append(f"gold not EXR: {err}")


def sweep(box: Box, rows: list[tuple[str, str | None]], args: argparse.Namespace,
          voices: list[str], single: list[CallRecord]) -> list[tuple[int, list[CallRecord]]]:
    """1, 2, 4, ... calls at once up to --concurrency, stopping past the budget."""
    levels, level, results = [], 1, []
    while level <= args.concurrency:
        levels.append(level)
        level *= 2
    if args.concurrency not in levels:
        levels.append(args.concurrency)
    first = args.n
    for level in levels:
        if level == 1 and single:
            results.append((1, single))
            continue
        count = max(args.sweep_calls, 2 * level)
        chunk = [rows[(first + k) % len(rows)] for k in range(count)]
        jobs = plan_jobs(chunk, voices, args.noise_share, 0.0, first=first)
        first += count
        print(f"sweep: {count} calls, {level} at a time", flush=True)
        audio = synthesize(jobs)
        recs = asyncio.run(run_calls(box, jobs, audio, level))
        results.append((level, recs))
        if percentile(turns_of(recs), 95) > args.budget_ms and not args.sweep_all:
            break
    return results


def main(argv: list[str]) -> int:
    """Run the call benchmark (or, with --offline-asr, the offline ASR table)."""
    if "--offline-asr" in argv:
        from benchmarks import voice

        return int(voice.main([a for a in argv if a != "--offline-asr"]))
    ap = argparse.ArgumentParser(prog="voxeron bench voice", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20, help="calls, one per utterance (first N)")
    ap.add_argument("--voices", default=",".join(BENCH_VOICES),
                    help=f"comma list of caller voices (default all: {', '.join(BENCH_VOICES)})")
    ap.add_argument("--noise-share", type=float, default=0.3,
                    help="share of calls with kitchen noise at 15 dB SNR")
    ap.add_argument("--barge-share", type=float, default=0.3,
                    help="share of calls that talk over the greeting or the read-back")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="sweep 1, 2, 4 ... up to this many calls at once (1: no sweep)")
    ap.add_argument("--sweep-calls", type=int, default=8, help="calls per sweep level (>= 2x level)")
    ap.add_argument("--sweep-all", action="store_true",
                    help="run every level up to --concurrency even past the budget")
    ap.add_argument("--budget-ms", type=float, default=1000.0, help="p95 turn latency budget of the sweep")
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT,
                    help="JSON lines of {'src'} (gold 'exr' optional); default PIZZA dev")
    ap.add_argument("--catalogs", type=Path, default=DEFAULT_CATALOGS, help="PIZZA catalogs dir")
    ap.add_argument("--output", type=Path, default=Path("var/bench-voice/calls.jsonl"))
    ap.add_argument("--dir", type=Path, default=Path("var/bench-voice/run"))
    ap.add_argument("--offline-asr", action="store_true",
                    help="run the offline ASR WER table (benchmarks/voice.py) instead")
    args = ap.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    if unknown := sorted(set(voices) - set(BENCH_VOICES) - {"piper", "flite"}):
        ap.error(f"unknown voices {unknown}; known: {', '.join(BENCH_VOICES)}")
    if args.n < 1 or not voices or not 0 <= args.noise_share <= 1 or not 0 <= args.barge_share <= 1:
        ap.error("--n >= 1, at least one voice, shares between 0 and 1")
    if not 1 <= args.concurrency <= 8:
        ap.error("--concurrency must be between 1 and 8")
    rows = read_rows(args.input.resolve())
    if not rows:
        raise SystemExit(f"--input {args.input}: no utterances")
    ensure_packages(voices)
    work = args.dir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    overlay, menu = write_overlay(args.catalogs.resolve(), work / "pizza_overlay.yaml")
    jobs = plan_jobs(rows[: args.n], voices, args.noise_share, args.barge_share)
    t0 = time.monotonic()
    print(f"synthesizing {len(jobs)} calls' lines in {len(voices)} voices ...", flush=True)
    audio = synthesize(jobs)
    sup = Supervisor()
    try:
        box = start_box(sup, work, overlay, args.concurrency)
        print(f"box ready on udp/{box.sip_port}; placing {len(jobs)} calls one at a time", flush=True)
        single = asyncio.run(run_calls(box, jobs, audio, 1))
        levels = sweep(box, rows, args, voices, single) if args.concurrency > 1 else []
    finally:
        sup.stop_all()
    everything = [r for _, recs in levels for r in recs if r.concurrency > 1] + single
    score(everything, box, menu)
    write_output(args.output, everything)
    print_report(single, levels, box.db, args, time.monotonic() - t0)
    return 0
