"""One phone call: caller audio -> endpointing -> ASR -> dialog -> tools -> TTS -> caller.

Half duplex for the skeleton: while the agent is thinking or speaking, caller audio is
not endpointed (barge-in comes with issue 6). Each agent turn's latency is measured from
the moment the caller's utterance was endpointed to the first agent audio handed to RTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from appliance.dialog.conversation import Action, CallTool, Conversation, Handoff, Hangup, Say
from appliance.dialog.order_tools import session_tools
from appliance.dialog.tool_registry import ToolRegistry
from appliance.store import LocalStore
from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.endpointing import EndpointConfig, Endpointer, Utterance
from appliance.voice.sip_agent import CallInfo, MediaChannel
from appliance.voice.tts_piper import PiperTts
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class VoiceDeps:
    """Everything a call needs, loaded once per process."""

    blueprint: Blueprint
    asr: WhisperAsr
    tts: PiperTts
    store: LocalStore
    tools: ToolRegistry
    tenant_id: str
    device_id: str
    clock: Callable[[], datetime] = utcnow
    prompt_cache: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def warm(self) -> None:
        """Load models and pre-synthesise the greeting so the first word comes at once."""
        self.asr.load()
        self.tts.load()
        self.speech(self.blueprint.prompt("greeting"))

    def speech(self, text: str) -> list[np.ndarray]:
        """Sentences of `text` as 8 kHz audio; fixed prompts are cached per blueprint hash."""
        key = f"{self.blueprint.content_hash}:{text}"
        if key not in self.prompt_cache:
            audio = list(self.tts.sentences(text))
            if len(self.prompt_cache) < 64:
                self.prompt_cache[key] = audio
            return audio
        return self.prompt_cache[key]


class CallSession:
    """Runs the conversation of one established call until hang-up."""

    def __init__(self, deps: VoiceDeps, call: CallInfo, media: MediaChannel) -> None:
        self.deps, self.call, self.media = deps, call, media
        self.correlation = Correlation(tenant_id=deps.tenant_id, device_id=deps.device_id,
                                       call_id=call.call_id)
        self.dialog = Conversation(deps.blueprint, self.correlation, session_tools(deps.blueprint))
        policy = deps.blueprint.policy
        self.endpointer = Endpointer(EndpointConfig(end_silence_ms=policy.endpoint_silence_ms))
        self._utterances: asyncio.Queue[tuple[Utterance, float]] = asyncio.Queue()
        self._busy = True  # the greeting plays first

    async def run(self) -> None:
        with log_context(tenant_id=self.deps.tenant_id, device_id=self.deps.device_id,
                         call_id=self.call.call_id):
            log.info("call answered", extra=fields(caller=self.call.caller))
            listener = asyncio.create_task(self._listen())
            try:
                if not await self._perform(self.dialog.start(self.deps.clock()), None):
                    await self._converse()
            finally:
                listener.cancel()
            log.info("call finished", extra=fields(phase=self.dialog.phase.value))

    async def _converse(self) -> None:
        while not self.media.closed.is_set():
            self._busy = False
            getter = asyncio.create_task(self._utterances.get())
            closed = asyncio.create_task(self.media.closed.wait())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            closed.cancel()
            utt, ended_at = getter.result()
            transcript = await asyncio.to_thread(self.deps.asr.transcribe, utt.audio,
                                                 self.deps.blueprint.asr_hints)
            asr_ms = (time.monotonic() - ended_at) * 1000
            log.info("caller said", extra=fields(text=transcript.text, asr_ms=round(asr_ms),
                                                 confidence=round(transcript.confidence, 3)))
            if not transcript.text:
                continue
            self.deps.store.record_turn(self.call.call_id, "caller", transcript.text, self.deps.clock())
            actions = self.dialog.on_utterance(transcript.text, self.deps.clock(),
                                               confidence=transcript.confidence)
            if await self._perform(actions, ended_at):
                return

    async def _listen(self) -> None:
        """Endpoint caller audio while the agent is idle; queue each finished utterance."""
        async for frame in self.media.frames():
            if self._busy or self.media.playing:
                self.endpointer.reset()
                continue
            utt = self.endpointer.feed(frame)
            if utt is not None:
                self._busy = True
                self._utterances.put_nowait((utt, time.monotonic()))

    async def _perform(self, actions: list[Action], ended_at: float | None) -> bool:
        """Carry out dialog actions in order; True when the call should end."""
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            if isinstance(action, Say):
                await self._say(action, ended_at)
                ended_at = None  # latency counts to the first words of a turn
            elif isinstance(action, CallTool):
                result = await asyncio.to_thread(self.deps.tools.run, action.call,
                                                 self.call.caller, self.deps.clock())
                queue[:0] = self.dialog.on_tool_result(result, self.deps.clock())
            elif isinstance(action, Handoff):
                log.warning("handoff requested", extra=fields(reason=action.reason))
                if action.call is not None:  # recorded for staff; the SIP REFER comes later
                    await asyncio.to_thread(self.deps.tools.run, action.call, self.call.caller,
                                            self.deps.clock())
            elif isinstance(action, Hangup):
                log.info("agent hangs up", extra=fields(reason=action.reason))
                return True
        return False

    async def _say(self, say: Say, ended_at: float | None) -> None:
        sentences = await asyncio.to_thread(self.deps.speech, say.text)
        latency_ms = None if ended_at is None else (time.monotonic() - ended_at) * 1000
        self.deps.store.record_turn(self.call.call_id, "agent", say.text, self.deps.clock(), latency_ms)
        log.info("agent says", extra=fields(text=say.text, prompt=say.prompt,
                                            turn_latency_ms=latency_ms and round(latency_ms)))
        plays = [asyncio.create_task(self.media.play(s)) for s in sentences]
        await asyncio.gather(*plays)
