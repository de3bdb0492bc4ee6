"""The scripted caller's turn-taking, driven frame by frame with time passed in."""

from __future__ import annotations

import numpy as np

from voxeron.caller_script import (
    AgentQuiet,
    AgentSpeaks,
    CallerScript,
    HangUp,
    Phase,
    Speak,
    frame_dbfs,
)

LOUD = (np.sin(np.arange(160) / 4) * 8000).astype(np.int16)
QUIET = np.zeros(160, dtype=np.int16)


def feed(script: CallerScript, frame: np.ndarray, start: float, seconds: float) -> tuple[list[object], float]:
    actions: list[object] = []
    t = start
    while t < start + seconds - 1e-9:
        actions += script.on_frame(frame, t)
        t = round(t + 0.02, 6)
    return actions, t


def test_levels() -> None:
    assert frame_dbfs(QUIET) == float("-inf")
    assert -20 < frame_dbfs(LOUD) < -10


def test_speaks_after_the_agent_went_quiet_and_measures_latency() -> None:
    script = CallerScript(["hello", "bye"], quiet_s=0.7)
    script.start(10.0)
    actions, t = feed(script, LOUD, 10.0, 1.0)  # greeting
    assert actions == [AgentSpeaks(10.0)]
    actions, t = feed(script, QUIET, t, 0.68)
    assert actions == []  # not quiet long enough yet
    actions, t = feed(script, QUIET, t, 0.04)
    assert actions[0] == AgentQuiet(actions[0].at, 1000.0) and actions[1] == Speak(0, "hello")  # type: ignore[attr-defined]
    assert script.phase is Phase.CALLER_TALKING and script.greeting_ms == 1000.0
    assert feed(script, LOUD, t, 0.2)[0] == []  # half duplex: agent audio ignored meanwhile
    script.caller_spoke(0, started=t, finished=t + 0.5)
    answer_at = round(t + 1.4, 6)  # the agent answers 900 ms after the caller finished
    actions, t2 = feed(script, LOUD, answer_at, 0.6)
    assert actions == [AgentSpeaks(answer_at)]
    turn = script.turns[0]
    assert turn.caller_text == "hello" and turn.latency_ms == 900.0
    assert turn.agent_started_s == round(answer_at - 10.0, 3)
    actions, _ = feed(script, QUIET, t2, 0.72)
    assert [type(a) for a in actions] == [AgentQuiet, Speak] and script.turns[0].agent_audio_ms == 600.0


def test_hangs_up_when_the_agent_stays_silent() -> None:
    script = CallerScript(["hello"], give_up_s=8.0)
    script.start(0.0)
    assert script.on_tick(7.9) == []
    assert script.on_tick(8.0) == [HangUp("agent silent for 8 s")]
    assert script.on_tick(9.0) == [] and script.phase is Phase.HUNG_UP


def test_after_the_last_line_waits_for_bye_then_gives_up() -> None:
    script = CallerScript([], quiet_s=0.7, give_up_s=8.0)
    script.start(0.0)
    _, t = feed(script, LOUD, 0.0, 0.5)
    actions, t = feed(script, QUIET, t, 0.8)
    assert [type(a) for a in actions] == [AgentQuiet] and script.phase is Phase.DONE
    assert script.on_tick(t + 7.0) == []
    assert isinstance(script.on_tick(t + 8.5)[0], HangUp)


def test_finish_closes_the_agents_last_stretch() -> None:
    script = CallerScript(["a"], quiet_s=0.7)
    script.start(0.0)
    feed(script, LOUD, 0.0, 0.3)
    script.finish(0.35)
    assert script.greeting_ms == 300.0 and script.phase is Phase.HUNG_UP
