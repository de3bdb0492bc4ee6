"""One phone call: caller audio -> endpointing -> ASR -> dialog -> tools -> TTS -> caller.

Caller audio is ignored while the agent is thinking, but not while it speaks: speech over
a prompt (barge-in.py decides) stops playback at once and is endpointed as the next
utterance. Each agent turn's latency is measured from the moment the caller's utterance
was endpointed to the first agent audio handed to RTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from appliance.dialog.conversation import Action, CallTool, Conversation, Handoff, Hangup, Say
from appliance.dialog.order_tools import session_tools
from appliance.dialog.tool_registry import ToolRegistry, tool_call
from appliance.store import LocalStore
from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.barge_in import BargeInConfig, BargeInDetector, speech_level_db
from appliance.voice.callbacks import CallbackScheduler
from appliance.voice.endpointing import EndpointConfig, Endpointer, Utterance
from appliance.voice.handover import HandoverSummary, build_summary
from appliance.voice.sip_agent import CallInfo, MediaChannel
from appliance.voice.sip_refer import TransferResult
from appliance.voice.sip_uri import SipUri
from appliance.voice.tts_piper import PiperTts
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation
from sync.contracts.tools import ToolResult
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


Transfer = Callable[[str, SipUri, float], Awaitable[TransferResult]]  # SipAgent.transfer


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
    # Human fallback: REFER to staff_uri when both are set, else (or on failure) a callback.
    transfer: Transfer | None = None
    staff_uri: SipUri | None = None
    transfer_timeout_s: float = 30.0
    callback_minutes: int = 15
    callbacks: CallbackScheduler | None = None

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
        self.barge_in = BargeInDetector(BargeInConfig.from_sensitivity(policy.barge_in_sensitivity))
        self._interrupting = False  # endpointing an utterance that cut the agent off
        self._cut = False  # the current turn was interrupted: its remaining prompts are dropped
        self.interruptions = 0
        self.handover: HandoverSummary | None = None
        self.transfer_result: TransferResult | None = None

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
            if self._utterances.empty():  # a barge-in may have queued the next one already
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
        """Endpoint caller audio while the agent is idle or being interrupted; queue utterances."""
        async for frame in self.media.frames():
            playing = self.media.playing
            if self.barge_in.feed(frame, playing) and playing and not self._interrupting:
                self._barge_in()
                continue
            if playing or (self._busy and not self._interrupting):
                self.endpointer.reset()
                continue
            utt = self.endpointer.feed(frame)
            if utt is not None:
                self._busy, self._interrupting = True, False
                self._utterances.put_nowait((utt, time.monotonic()))

    def _barge_in(self) -> None:
        """The caller talks over the agent: silence it and endpoint from the speech onset."""
        self.media.stop_playback()
        self._interrupting = self._cut = True
        self.interruptions += 1
        self.endpointer.reset()
        utt = None
        for held in self.barge_in.onset():
            utt = self.endpointer.feed(held) or utt
        log.info("caller barged in", extra=fields(threshold_db=round(self.barge_in.threshold_db, 1)))
        if utt is not None:  # cannot happen with sane configs; never lose an utterance
            self._busy, self._interrupting = True, False
            self._utterances.put_nowait((utt, time.monotonic()))

    async def _perform(self, actions: list[Action], ended_at: float | None) -> bool:
        """Carry out dialog actions in order; True when the call should end."""
        queue = list(actions)
        self._cut = False
        while queue:
            action = queue.pop(0)
            if isinstance(action, Say):
                if self._cut:  # the caller interrupted this turn: they are not listening
                    log.info("prompt dropped after barge-in", extra=fields(prompt=action.prompt))
                    continue
                await self._say(action, ended_at)
                ended_at = None  # latency counts to the first words of a turn
            elif isinstance(action, CallTool):
                result = await asyncio.to_thread(self.deps.tools.run, action.call,
                                                 self.call.caller, self.deps.clock())
                queue[:0] = self.dialog.on_tool_result(result, self.deps.clock())
            elif isinstance(action, Handoff):
                await self._hand_over(action)
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
        if sentences:
            self.barge_in.start_prompt(speech_level_db(np.concatenate(sentences)))
        plays = [asyncio.create_task(self.media.play(s)) for s in sentences]
        await asyncio.gather(*plays)

    async def _hand_over(self, handoff: Handoff) -> None:
        """Summarise the call for staff, REFER it to the staff line if one is set, else (or
        if that fails) record a callback, arm its reminder and tell the caller when; either
        way the summary is queued as a slip for the kitchen printer."""
        log.warning("handoff requested", extra=fields(reason=handoff.reason))
        notes = dict(handoff.call.args.get("summary") or {}) if handoff.call is not None else {}
        summary = self.handover = build_summary(
            call_id=self.call.call_id, caller=self.call.caller, reason=handoff.reason,
            turns=self.deps.store.turns(self.call.call_id), notes=notes, at=self.deps.clock())
        deps = self.deps
        if deps.transfer is not None and deps.staff_uri is not None and not self.media.closed.is_set():
            await self.media.drain()  # let the escalation prompt finish before the line moves
            result = self.transfer_result = await deps.transfer(self.call.call_id, deps.staff_uri,
                                                                deps.transfer_timeout_s)
            if result.transferred:
                await self._record("handoff.transfer", {"reason": handoff.reason,
                                                        "summary": summary.fields()})
                self._queue_slip("HANDOVER", summary.lines())
                return
        when = deps.clock() + timedelta(minutes=deps.callback_minutes)
        notes_out = summary.fields()
        if self.transfer_result is not None:
            notes_out["transfer"] = self.transfer_result.outcome.value
        done = await self._record("callback.schedule", {"reason": handoff.reason,
                                                        "summary": notes_out, "not_before": when})
        if done.ok and done.result and deps.callbacks is not None:
            deps.callbacks.schedule(str(done.result["follow_up_id"]), when)
        promised = [f"Promised: call back in about {deps.callback_minutes} minutes"]
        if self.transfer_result is not None:
            promised.append(f"Transfer: {self.transfer_result.outcome.value}")
        self._queue_slip("CALL BACK", summary.lines() + promised)
        await self._say(Say(f"A member of our staff will call you back in about "
                            f"{deps.callback_minutes} minutes.", "callback_eta"), None)

    def _queue_slip(self, title: str, lines: list[str]) -> None:
        """Queue the handover slip for the kitchen printer, once per call."""
        try:
            self.deps.store.queue_slip(kind="handover", title=title, lines=lines,
                                       idempotency_key=f"{self.call.call_id}:handover",
                                       now=self.deps.clock(), call_id=self.call.call_id)
        except Exception:  # the follow-up is recorded; a lost slip must not drop the call
            log.exception("handover slip not queued")

    async def _record(self, tool: str, args: dict[str, object]) -> ToolResult:
        """Run a follow-up tool (recorded in the follow_ups table with the handover notes)."""
        result = await asyncio.to_thread(self.deps.tools.run, tool_call(tool, args, self.correlation),
                                         self.call.caller, self.deps.clock())
        if not result.ok:
            log.error("follow-up not recorded", extra=fields(tool=tool, error=str(result.error)))
        return result
