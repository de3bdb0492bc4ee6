"""FailoverAsr over engines that implement the ASR protocol: order, wrap-around, what fails over."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from appliance.voice.asr_failover import Failover, FailoverAsr
from appliance.voice.asr_process import SerialAsr, WorkerBusy, read_block, write_block
from appliance.voice.asr_whisper import Transcript
from appliance.voice.providers import ProviderError, ProviderUnavailable

PCM = np.zeros(1600, dtype=np.int16)


class Engine:
    """An ASR engine with a fixed answer, or a fixed failure."""

    def __init__(self, text: str = "", error: ProviderError | None = None,
                 gate: threading.Event | None = None) -> None:
        self.text, self.error, self.gate, self.calls = text, error, gate, 0

    def load(self) -> None:
        return None

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "") -> Transcript:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.error is not None:
            raise self.error
        return Transcript(self.text, 0.9, len(pcm8k) // 8)


def test_unavailable_provider_fails_over_and_the_same_audio_is_decoded_again() -> None:
    engines = {"a": Engine(error=ProviderUnavailable("a", "not installed")), "b": Engine("yes")}
    events: list[Failover] = []
    asr = FailoverAsr(["a", "b"], engines.__getitem__, events.append)
    assert asr.transcribe(PCM).text == "yes" and asr.current == "b"
    assert [(e.from_provider, e.to_provider) for e in events] == [("a", "b")]
    assert asr.transcribe(PCM).text == "yes" and engines["a"].calls == 1  # stays on b


def test_a_bad_decode_is_not_a_dead_provider_and_all_failing_raises() -> None:
    bad = ProviderError("a", "decode_failed", "garbage audio")
    asr = FailoverAsr(["a", "b"], {"a": Engine(error=bad), "b": Engine("x")}.__getitem__)
    with pytest.raises(ProviderError, match="decode_failed"):
        asr.transcribe(PCM)
    assert asr.current == "a"
    dead = {n: Engine(error=ProviderUnavailable(n, "gone")) for n in "ab"}
    with pytest.raises(ProviderUnavailable):
        FailoverAsr(["a", "b"], dead.__getitem__).transcribe(PCM)
    with pytest.raises(ValueError):
        FailoverAsr([], dead.__getitem__)


def test_speculative_decode_skips_a_busy_engine_instead_of_queueing() -> None:
    gate = threading.Event()
    serial = SerialAsr("a", Engine("a large pizza", gate=gate))
    asr = FailoverAsr(["a"], lambda _: serial)
    final = threading.Thread(target=asr.transcribe, args=(PCM,))
    final.start()
    while serial.inner.calls == 0:  # type: ignore[attr-defined]
        threading.Event().wait(0.01)
    with pytest.raises(WorkerBusy):
        asr.transcribe(PCM, speculative=True)
    gate.set()
    final.join()
    assert asr.transcribe(PCM, speculative=True).text == "a large pizza"


def test_framing_round_trips_and_refuses_an_oversized_block(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "stream"
    with path.open("wb") as out:
        write_block(out, b'{"id": 1}')
        write_block(out, PCM.tobytes())
        out.write((1 << 31).to_bytes(4, "big"))
    with path.open("rb") as inp:
        assert read_block(inp) == b'{"id": 1}' and len(read_block(inp)) == PCM.nbytes
        with pytest.raises(ValueError, match="over the"):
            read_block(inp)
        with pytest.raises(EOFError):
            read_block(inp)
