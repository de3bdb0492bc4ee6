"""`voxeron bench voice` end to end: one real SIP call to the real voice process, scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import voice_calls
from benchmarks.exr import read_exr


@pytest.mark.slow
def test_one_call_is_placed_measured_and_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"src": "i want a large pizza with ham",
                                  "exr": "(ORDER (PIZZAORDER (NUMBER 1 ) (SIZE LARGE ) (TOPPING HAM ) ) )"})
                      + "\n")
    out = tmp_path / "calls.jsonl"
    code = voice_calls.main(["--n", "1", "--voices", "flite-slt", "--noise-share", "0",
                             "--barge-share", "0", "--input", str(source), "--output", str(out),
                             "--dir", str(tmp_path / "run")])
    assert code == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["sip_status"] == 200 and row["voice"] == "flite-slt" and row["noise"] == "clean"
    assert row["greeting_ms"] is not None and len(row["turn_ms"]) == 3
    assert row["heard"], "the voice log names what the box heard"
    read_exr(row["pred_exr"])  # well-formed EXR whatever the recogniser made of it
    printed = capsys.readouterr().out
    assert "overall" in printed and "ASR RTF" in printed
