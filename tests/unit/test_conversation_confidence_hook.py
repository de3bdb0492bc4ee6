"""The call session hands the recogniser's confidence to the conversation: a call whose
transcripts stay unsure is asked again and then escalated, and nothing unsure is ordered."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np

from appliance.dialog.conversation import Phase
from appliance.dialog.order_tools import BoxTools
from appliance.store import LocalStore
from appliance.voice.asr_whisper import Transcript
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.endpointing import Utterance
from appliance.voice.sip_dialog import CallInfo
from blueprints.engine import compose_builtin


class _UnsureAsr:
    def transcribe(self, audio: np.ndarray, hints: str) -> Transcript:
        return Transcript(text="a large pizza", confidence=0.1, audio_ms=800)


class _SilentTts:
    def sentences(self, text: str) -> Iterator[np.ndarray]:
        return iter([])


class _Line:
    """A media channel that plays nothing and hears nothing by itself."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.playing = False

    async def frames(self) -> AsyncIterator[np.ndarray]:
        await self.closed.wait()
        return
        yield  # an async generator that ends with the call

    async def play(self, pcm: np.ndarray) -> None:
        return None


def test_unsure_transcripts_are_never_ordered_and_escalate(tmp_path: Path) -> None:
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    store = LocalStore(tmp_path / "box.sqlite3")
    deps = VoiceDeps(blueprint=bp, asr=_UnsureAsr(), tts=_SilentTts(), store=store,  # type: ignore[arg-type]
                     tools=BoxTools(store, bp, "ten_c", "dev_c"), tenant_id="ten_c", device_id="dev_c")
    session = CallSession(deps, CallInfo("call_c", "sip-c", "sip:c@x", "+1555", "order",
                                         ("127.0.0.1", 5060)), _Line())  # type: ignore[arg-type]
    turns = bp.repair.max_attempts + 1  # each unsure turn is a failed attempt at the order
    for _ in range(turns):
        session._utterances.put_nowait((Utterance(np.zeros(160, np.int16), 20), time.monotonic()))
    asyncio.run(asyncio.wait_for(session._converse(), timeout=10))
    assert session.dialog.phase is Phase.DONE and session.dialog.unsure_turns == turns
    assert "lines" not in session.dialog.values and session.dialog.repairs["lines"] == turns
    [follow_up] = deps.tools.book.follow_ups()  # type: ignore[attr-defined]
    assert follow_up.reason == "repeated repair failure"
    agent = [t.text for t in store.turns("call_c") if t.speaker == "agent"]
    assert agent[:2] == [bp.prompt("unclear")] * 2 and agent[2] == bp.prompt("handoff")
