"""The call benchmark's parts: its caller script (time passed in), stored order -> EXR, caller
audio levels and noise (real sox), job planning and the voice-log reader (real JSON logs)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from appliance.dialog.order_parser import OrderParser
from appliance.dialog.read_back import to_order_lines
from benchmarks.caller_audio import (
    SPEECH_LEVEL_DBFS,
    NoiseBed,
    active_level_dbfs,
    caller_line,
    frame_levels,
)
from benchmarks.duplex_script import DuplexScript, HangUp, Speak
from benchmarks.exr import read_exr, same_tree, to_exr
from benchmarks.stored_order_exr import UnknownName, order_exr
from benchmarks.voice_calls import plan_jobs, read_rows
from benchmarks.voice_log_figures import asr_rtf, read_voice_log
from sync.contracts.order import LineModifier, Order
from sync.structured_log import JsonFormatter, fields, log_context
from tests.unit.test_exr import MENU


def packets(script: DuplexScript, start: float, seconds: float) -> list[object]:
    """Agent packets every 20 ms for `seconds`, with ticks in between."""
    out: list[object] = []
    for k in range(round(seconds / 0.02)):
        out += script.on_packet(start + k * 0.02)
        out += script.on_tick(start + k * 0.02 + 0.01)
    return out


def ticks(script: DuplexScript, start: float, seconds: float) -> list[object]:
    return [a for k in range(round(seconds / 0.02)) for a in script.on_tick(start + k * 0.02)]


def test_turns_are_measured_from_the_last_caller_packet_to_the_first_agent_packet() -> None:
    script = DuplexScript(lines=2)
    script.answered(10.0)
    assert packets(script, 10.05, 2.0) == []  # greeting
    assert script.timings.greeting_ms == 50.0
    assert ticks(script, 12.05, 0.8) == [Speak(0, over_agent=False)]  # quiet 0.7 s, then talk
    script.speech_started(12.8)
    script.speech_ended(14.0)
    packets(script, 14.6, 1.0)
    assert script.timings.turn_ms == [600.0]
    assert ticks(script, 15.6, 0.8) == [Speak(1, over_agent=False)]
    script.speech_ended(16.0)
    assert ticks(script, 16.0, 10.5)[-1] == HangUp("agent silent for 10 s")
    assert script.timings.turn_ms == [600.0, None]  # no reply to the last line
    assert not script.timings.barged


def test_barge_in_stop_is_onset_to_the_agents_last_packet() -> None:
    script = DuplexScript(lines=3, barge_at="greeting", barge_after_s=1.0)
    script.answered(0.0)
    actions = packets(script, 0.1, 1.5)
    assert actions == [Speak(0, over_agent=True)]
    script.speech_started(1.12)  # first caller packet; the agent goes on until 1.58
    packets(script, 1.6, 0.0)
    ticks(script, 1.6, 1.0)
    assert script.timings.barged and script.timings.barge_ms == pytest.approx(460.0, abs=20)
    script.speech_ended(3.0)
    packets(script, 3.9, 0.5)
    assert script.timings.turn_ms == [900.0]


def test_a_turn_that_ends_before_the_barge_point_is_answered_normally() -> None:
    script = DuplexScript(lines=2, barge_at="readback", barge_after_s=1.5)
    script.answered(0.0)
    packets(script, 0.0, 1.0)
    assert ticks(script, 1.0, 0.8) == [Speak(0, over_agent=False)]
    script.speech_ended(2.0)
    assert packets(script, 2.5, 1.0) == []  # read-back shorter than 1.5 s: no barge-in
    assert ticks(script, 3.5, 0.8) == [Speak(1, over_agent=False)]
    assert script.timings.barge_ms is None and not script.timings.barged


def _order(lines: list, caller: str = "5550000001") -> Order:  # type: ignore[type-arg]
    return Order(order_id="ord_1", tenant_id="t", device_id="d", call_id="c", number=1,
                 caller=caller, lines=lines, total_cents=0, currency="USD", blueprint_hash="h",
                 created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_a_stored_order_reads_back_as_the_parse_it_came_from() -> None:
    text = ("two large thin crust pies with extra cheese and ham but no onions, a small pizza "
            "not thin crust without extra ham, and three one liter lemon sodas in cans")
    parsed = OrderParser(MENU).parse(text)
    stored = _order(to_order_lines(parsed.lines, MENU))
    assert same_tree(read_exr(order_exr(stored, MENU)), read_exr(to_exr(parsed, MENU)))
    assert order_exr(None, MENU) == "(ORDER )"


def test_a_name_from_another_menu_is_an_error_not_a_guess() -> None:
    lines = to_order_lines(OrderParser(MENU).parse("a small pizza with ham").lines, MENU)
    lines[0].modifiers = [LineModifier(kind="add", name="anchovies")]
    with pytest.raises(UnknownName, match="anchovies"):
        order_exr(_order(lines), MENU)


def test_caller_lines_are_trimmed_and_levelled() -> None:
    tone = (np.sin(np.arange(8000) / 3) * 2000).astype(np.int16)
    pcm = np.concatenate([np.zeros(4000, np.int16), tone, np.zeros(4000, np.int16)])
    line = caller_line(pcm)
    assert len(line) == 8000
    assert active_level_dbfs(line) == pytest.approx(SPEECH_LEVEL_DBFS, abs=0.5)


def test_kitchen_noise_sits_at_the_asked_snr_below_speech() -> None:
    bed = NoiseBed.kitchen(snr_db=15.0, seed=3)
    level = 10 * np.log10(np.mean((bed.samples.astype(np.float64) / 32768) ** 2))
    assert level == pytest.approx(SPEECH_LEVEL_DBFS - 15.0, abs=0.5)
    assert len(bed.frame(10**6)) == 160
    assert frame_levels(bed.samples).std() > 0.1  # not a constant hum


def test_jobs_spread_voices_noise_and_barge_in() -> None:
    rows = [(f"utterance {i}", None) for i in range(20)]
    jobs = plan_jobs(rows, ["a", "b"], noise_share=0.3, barge_share=0.5)
    assert [j.voice for j in jobs[:4]] == ["a", "b", "a", "b"]
    assert sum(j.noise for j in jobs) == 6
    barges = [j.barge for j in jobs if j.barge != "none"]
    assert len(barges) == 10 and barges[:2] == ["greeting", "readback"]
    assert len({j.caller_id for j in jobs}) == 20


def test_input_rows_bad_lines_are_named(tmp_path: Path) -> None:
    good = tmp_path / "in.jsonl"
    good.write_text('{"src": "a pizza"}\n\n{"dev.SRC": "two cokes", "dev.EXR": "(ORDER )"}\n{"x": 1}\n')
    assert read_rows(good) == [("a pizza", None), ("two cokes", "(ORDER )")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"src": "a pizza"}\nnot json\n')
    with pytest.raises(SystemExit, match="bad.jsonl:2"):
        read_rows(bad)


def test_voice_log_gives_per_call_turns_and_an_asr_estimate(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("voice"))
    log = logging.getLogger("test.voice_log")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    with log_context(call_id="call_1"):
        log.info("incoming call", extra=fields(sip_call_id="abc@127.0.0.1"))
        log.info("caller said", extra=fields(text="two pizzas", asr_ms=300, speculative=False))
        log.info("caller said", extra=fields(text="yes", asr_ms=10, speculative=True))
        log.info("caller barged in", extra=fields(threshold_db=-20.0))
    log.removeHandler(handler)
    path = tmp_path / "voice.log"
    path.write_text("not json\n" + stream.getvalue())
    calls = read_voice_log(path)
    assert list(calls) == ["abc@127.0.0.1"] and calls["abc@127.0.0.1"].barge_ins == 1
    rtf = asr_rtf([(calls["abc@127.0.0.1"], [3.0, 0.5])])
    assert rtf.value == pytest.approx(0.1) and not rtf.exact  # the speculative turn is left out
    assert json.loads(stream.getvalue().splitlines()[0])["call_id"] == "call_1"


@pytest.mark.parametrize("name", ["flite-kal16", "flite-awb", "piper-shifted"])
def test_bench_voices_speak_8k_phone_audio(name: str) -> None:
    from voxeron.caller_voices import caller_voice

    pcm = caller_voice(name).synthesize("two large pizzas")
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert 0.5 < len(pcm) / 8000 < 4.0 and np.abs(pcm).max() > 1000


def test_unknown_voice_names_the_known_ones() -> None:
    from voxeron.caller_voices import caller_voice

    with pytest.raises(ValueError, match="festival-slt-hts"):
        caller_voice("flite-nobody")


def test_sizes_the_box_filled_in_are_set_aside_only_when_never_said() -> None:
    from benchmarks.stored_order_exr import without_filled_sizes

    parsed = OrderParser(MENU).parse("a pizza with ham")
    filled = [line.model_copy(update={"size": "small"}) for line in to_order_lines(parsed.lines, MENU)]
    order = _order(filled)
    spoken = order_exr(without_filled_sizes(order, MENU, "a pizza with ham"), MENU)
    assert same_tree(read_exr(spoken), read_exr("(ORDER (PIZZAORDER (NUMBER 1 ) (TOPPING HAM ) ) )"))
    kept = order_exr(without_filled_sizes(order, MENU, "a small pizza with ham"), MENU)
    assert "(SIZE SMALL )" in kept
    large = _order([filled[0].model_copy(update={"size": "large"})])
    assert "(SIZE LARGE )" in order_exr(without_filled_sizes(large, MENU, "a pizza"), MENU)


def test_table_rows_per_voice_and_overall() -> None:
    from benchmarks.bench_call import CallOutcome
    from benchmarks.duplex_script import Timings
    from benchmarks.voice_calls import CallJob, CallRecord
    from benchmarks.voice_calls_report import table

    def record(i: int, voice: str, turns: list[float | None], exact: bool) -> CallRecord:
        job = CallJob(i, "a pizza", "(ORDER )", voice, noise=i % 2 == 1, barge="none")
        timings = Timings(greeting_ms=20.0 + i, turn_ms=turns)
        return CallRecord(job, CallOutcome(f"sip{i}", 200, timings), 1, exact=exact, exact_said=True)

    rows = table([record(0, "a", [400.0, 600.0], True), record(1, "b", [900.0, None], False)], "voice")
    assert [r.split()[0] for r in rows] == ["voice", "a", "b", "overall"]
    overall = rows[-1].split()
    assert overall[1:4] == ["2", "600", "900"]  # n, turn p50, turn p95 (nearest rank)
    assert overall[-3:] == ["50.0", "100.0", "1"]  # exact %, exact* %, unanswered turns
    assert [r.split()[0] for r in table([record(0, "a", [1.0], True)], "noise")][1] == "clean"
