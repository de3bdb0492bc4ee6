"""Speculative decoding and early endpointing: frames and results in, decisions out."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from appliance.dialog.answer_check import AnswerCheck
from appliance.dialog.conversation import Phase
from appliance.dialog.dialog_machine import OrderDialog
from appliance.voice.asr_whisper import Transcript
from appliance.voice.human_fallback import FallbackTrigger, LatencyWatch, fallback_decision
from appliance.voice.speculation import (
    AwaitInFlight,
    CallLoad,
    EndNow,
    Launch,
    SpeculationConfig,
    Speculator,
)
from blueprints.engine import compose_builtin
from sync.contracts.errors import Correlation

RNG = np.random.default_rng(11)
NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def speech() -> np.ndarray:
    return (RNG.standard_normal(160) * 5000).astype(np.int16)


def hush() -> np.ndarray:
    return (RNG.standard_normal(160) * 20).astype(np.int16)


def said(text: str) -> Transcript:
    return Transcript(text, 0.9, 1000)


def run(spec: Speculator, frames: list[np.ndarray]) -> list[Launch | EndNow]:
    """Feed frames as the session does (utterance open from the first speech frame)."""
    out = []
    for f in frames:
        step = spec.feed(f, utterance_open=spec._open or bool(np.abs(f).max() > 1000))
        if step is not None:
            out.append(step)
    return out


def warmed() -> Speculator:
    spec = Speculator(SpeculationConfig(every_ms=450))
    run(spec, [hush() for _ in range(20)])
    return spec


def test_one_decode_in_flight_and_a_new_one_every_450_ms_of_audio() -> None:
    spec = warmed()
    steps = run(spec, [speech() for _ in range(15)])
    assert [type(s) for s in steps] == [Launch]  # 450 ms of audio (pre-roll + speech)
    first = steps[0]
    assert isinstance(first, Launch) and first.upto == len(first.audio) // 160
    assert run(spec, [speech() for _ in range(40)]) == []  # still in flight: never a second
    assert spec.on_result(first.generation, first.upto, said("a large"), complete=False) is None
    [second] = run(spec, [speech()])  # 800 ms of new audio since the first launch
    assert isinstance(second, Launch) and second.upto > first.upto


def test_a_pause_launches_at_once_and_a_covering_result_replaces_the_final_decode() -> None:
    spec = warmed()
    [first] = run(spec, [speech() for _ in range(15)])
    spec.on_result(first.generation, first.upto, said("a large"), complete=False)
    steps = run(spec, [speech() for _ in range(5)] + [hush() for _ in range(6)])
    assert len(steps) == 1 and isinstance(steps[0], Launch)  # the pause, 120 ms in
    spec.on_result(steps[0].generation, steps[0].upto, said("a large pepperoni pizza"), False)
    run(spec, [hush() for _ in range(24)])
    assert spec.finish(end_silence_ms=600) == said("a large pepperoni pizza")
    assert spec.used == 1


def test_a_result_that_misses_the_last_words_is_not_used() -> None:
    spec = warmed()
    [first] = run(spec, [speech() for _ in range(15)])
    spec.on_result(first.generation, first.upto, said("a large"), complete=True)
    [pause] = run(spec, [speech() for _ in range(10)] + [hush() for _ in range(6)])  # went on
    spec.on_failed(pause.generation)  # the worker was busy with another call's decode
    [retry] = run(spec, [hush() for _ in range(24)])  # 450 ms on, the speech is still uncovered
    spec.on_failed(retry.generation)
    assert spec.finish(end_silence_ms=600) is None


def test_a_decode_started_at_the_pause_is_awaited_not_repeated() -> None:
    spec = warmed()
    [first] = run(spec, [speech() for _ in range(15)])
    spec.on_result(first.generation, first.upto, said("a large"), complete=False)
    [pause] = run(spec, [speech() for _ in range(5)] + [hush() for _ in range(6)])
    run(spec, [hush() for _ in range(24)])  # the endpointer's 600 ms; the decode is still running
    assert spec.finish(end_silence_ms=600) == AwaitInFlight(pause.generation)
    assert spec.generation != pause.generation  # its late on_result is stale for the machine


def test_stale_results_are_ignored_after_a_reset() -> None:
    spec = warmed()
    [first] = run(spec, [speech() for _ in range(15)])
    spec.reset()  # the agent started talking; that utterance is gone
    assert spec.on_result(first.generation, first.upto, said("yes"), complete=True) is None
    assert spec.finish(600) is None and not spec.in_flight


def test_complete_answer_ends_the_turn_after_the_short_silence() -> None:
    spec = Speculator(SpeculationConfig(every_ms=450, early_end_ms=280))
    run(spec, [hush() for _ in range(20)])
    run(spec, [speech() for _ in range(15)])  # launch 1 (in flight)
    spec.on_failed(spec.generation)
    pause = run(spec, [hush() for _ in range(6)])
    assert isinstance(pause[0], Launch)
    assert spec.on_result(pause[0].generation, pause[0].upto, said("yes"), complete=True) is None
    ended = run(spec, [hush() for _ in range(8)])  # 6 + 8 frames = 280 ms of silence
    assert len(ended) == 1 and isinstance(ended[0], EndNow)
    assert ended[0].transcript.text == "yes" and ended[0].speech_ms == 300


def test_incomplete_answer_waits_for_the_policy_silence() -> None:
    spec = warmed()
    run(spec, [speech() for _ in range(15)])
    spec.on_failed(spec.generation)
    [pause] = run(spec, [hush() for _ in range(6)])
    assert isinstance(pause, Launch)
    spec.on_result(pause.generation, pause.upto, said("I'd like a"), complete=False)
    assert not any(isinstance(s, EndNow) for s in run(spec, [hush() for _ in range(20)]))


@pytest.fixture(scope="module")
def check() -> AnswerCheck:
    return AnswerCheck(compose_builtin("restaurant_orders", "demo_pizza"))


def dialog():  # type: ignore[no-untyped-def]
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    d = OrderDialog(bp, Correlation(tenant_id="ten_a", device_id="dev_a", call_id="c1"))
    d.start(NOW)
    return d


def test_complete_answer_predicate_per_dialog_state(check: AnswerCheck) -> None:
    d = dialog()
    assert check.complete(d, "a large pepperoni pizza please", NOW)
    assert check.complete(d, "a pepperoni pizza", NOW)  # pizza has a default size here
    assert not check.complete(d, "can I get a sushi roll", NOW)  # off the menu: let them finish
    assert not check.complete(d, "I'd like a", NOW) and not check.complete(d, "", NOW)
    assert check.complete(d, "can I talk to a real person", NOW)
    d.on_utterance("a large pepperoni pizza and two cokes", NOW)
    assert check.complete(d, "no that's all", NOW)  # list filled: done closes it
    d.on_utterance("that's all", NOW)
    assert d.phase is Phase.CONFIRMING
    assert check.complete(d, "yes that's right", NOW) and check.complete(d, "no", NOW)
    assert not check.complete(d, "hmm well", NOW)


def test_latency_watch_two_in_a_row_or_one_twice_over() -> None:
    watch = LatencyWatch(budget_ms=1000)
    assert watch.observe(1200) is None and watch.observe(800) is None  # the run is broken
    assert watch.observe(1100) is None
    assert "2 turns in a row" in (watch.observe(1300) or "")
    assert "2x" in (watch.observe(2100) or "")
    assert watch.observe(900) is None


def test_every_trigger_goes_through_one_decision() -> None:
    assert fallback_decision() is None and fallback_decision(dtmf="5") is None
    cases = {FallbackTrigger.DTMF: fallback_decision(dtmf="0"),
             FallbackTrigger.LATENCY: fallback_decision(latency_breach="2 turns in a row"),
             FallbackTrigger.REPAIR: fallback_decision(dialog_reason="repeated repair failure"),
             FallbackTrigger.CALLER_ASKED: fallback_decision(dialog_reason="caller asked for a person"),
             FallbackTrigger.TOOL_FAILED: fallback_decision(dialog_reason="order.submit failed: x"),
             FallbackTrigger.OTHER: fallback_decision(dialog_reason="answer_calls_off")}
    for trigger, decision in cases.items():
        assert decision is not None and decision.trigger is trigger and decision.reason
    breach = LatencyWatch(budget_ms=500).observe(1200)  # the reason as it comes back from the
    again = fallback_decision(dialog_reason=breach)  # dialog's Handoff to the handover path
    assert again is not None and again.trigger is FallbackTrigger.LATENCY
    assert fallback_decision(dialog_reason="caller pressed 0 for staff").trigger is (  # type: ignore[union-attr]
        FallbackTrigger.DTMF)


def test_speculation_stops_past_the_configured_number_of_calls() -> None:
    load = CallLoad(speculate_up_to=2)
    load.active = 2
    assert load.speculation_allowed
    load.active = 3
    assert not load.speculation_allowed
