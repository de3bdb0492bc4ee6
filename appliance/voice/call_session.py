"""One phone call: caller audio -> endpointing -> ASR -> dialog -> tools -> TTS -> caller.

Caller audio is ignored while the agent is thinking, but not while it speaks: speech over
a prompt (barge-in.py decides) stops playback at once and is endpointed as the next
utterance. Each agent turn's latency is measured from the moment the caller's utterance
was endpointed to the first agent audio handed to RTP.

Recognition follows the call's routing decision (routing.py), fails over to the next
provider when one dies (asr_failover.py) and is decoded speculatively while the caller
speaks (speculation.py); turns over the latency budget hand the call to staff
(human_fallback.py), like every other reason to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from appliance.dialog.answer_check import AnswerCheck
from appliance.dialog.conversation import Action, CallTool, Conversation, Handoff, Hangup, Say
from appliance.dialog.order_tools import session_tools
from appliance.dialog.tool_registry import ToolRegistry, tool_call
from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions
from appliance.voice.asr_pool import AsrPool
from appliance.voice.asr_whisper import Transcript, WhisperAsr
from appliance.voice.barge_in import BargeInConfig, BargeInDetector, speech_level_db
from appliance.voice.call_routing import CallRouting, session_facts
from appliance.voice.callbacks import CallbackScheduler
from appliance.voice.endpointing import EndpointConfig, Endpointer, Utterance
from appliance.voice.handover import HandoverSummary, build_summary
from appliance.voice.human_fallback import LatencyWatch, fallback_decision
from appliance.voice.providers import ProviderError, ProviderRegistry
from appliance.voice.sip_agent import CallInfo, MediaChannel
from appliance.voice.sip_refer import TransferResult
from appliance.voice.sip_uri import SipUri
from appliance.voice.speculation import AwaitInFlight, CallLoad, EndNow, Launch, Speculator
from appliance.voice.tts_piper import TELEPHONE_RATE, PiperTts
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation
from sync.contracts.tools import ToolResult
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


Transfer = Callable[[str, SipUri, float], Awaitable[TransferResult]]  # SipAgent.transfer


def _loggable(text: str, kept: bool) -> str:
    """A turn's text for the log: where the tenant keeps no transcripts (the turn was not
    stored), the log must not become the transcript store instead."""
    return text if kept or not text else f"[not kept: {len(text)} chars]"


def no_routing_prefs() -> Mapping[str, object] | None:
    return None


Heard = Transcript | AwaitInFlight | None  # what speculation already has for an utterance


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
    # Vendor routing: providers by name from `asr_pool` (else `asr` serves every name), the
    # decision and failovers stored in `sessions`, the tenant's `routing` desired state.
    providers: ProviderRegistry = field(default_factory=ProviderRegistry)
    asr_pool: AsrPool | None = None
    sessions: CallSessions | None = None
    routing_prefs: Callable[[], Mapping[str, object] | None] = no_routing_prefs
    speculate: bool = False  # decode while the caller speaks (service: VoiceConfig.asr_speculation)
    load: CallLoad = field(default_factory=CallLoad)  # shared by every call of the process
    preferred_asr: str | None = None  # VoiceConfig.asr_model: first when routing allows it

    def warm(self) -> None:
        """Load models and pre-synthesise the greeting so the first word comes at once."""
        if self.asr_pool is None:
            self.asr.load()
        self.tts.load()
        self.speech(self.blueprint.prompt("greeting"))

    def speech(self, text: str) -> list[np.ndarray]:
        """Sentences of `text` as 8 kHz audio; fixed prompts are cached per blueprint hash."""
        audio = self.cached_speech(text)
        if audio is None:
            audio = list(self.tts.sentences(text))
            self.remember_speech(text, audio)
        return audio

    def cached_speech(self, text: str) -> list[np.ndarray] | None:
        return self.prompt_cache.get(f"{self.blueprint.content_hash}:{text}")

    def remember_speech(self, text: str, audio: list[np.ndarray]) -> None:
        if len(self.prompt_cache) < 64:
            self.prompt_cache[f"{self.blueprint.content_hash}:{text}"] = audio


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
        self._heard: dict[int, Heard] = {}  # what speculation has for a queued utterance, by id
        pool = deps.asr_pool
        self.routed = CallRouting(
            call_id=call.call_id, tenant_id=deps.tenant_id, device_id=deps.device_id,
            facts=session_facts(deps.blueprint, deps.routing_prefs(), deps.preferred_asr),
            providers=deps.providers, resolve=pool.get if pool else (lambda _: deps.asr),
            sessions=deps.sessions, clock=deps.clock, preload=pool.preload if pool else None)
        self.session_id, self.failovers = self.routed.session_id, self.routed.failovers
        self.asr = self.routed.asr
        self.speculator = Speculator()
        self.answers = AnswerCheck(deps.blueprint)
        self._ahead: dict[int, asyncio.Task[Transcript | None]] = {}  # decodes in flight by generation
        self.latency = LatencyWatch(policy.latency_budget_ms)
        self._breach: str | None = None
        self._busy = True  # the greeting plays first
        self.barge_in = BargeInDetector(BargeInConfig.from_sensitivity(policy.barge_in_sensitivity))
        self._interrupting = False  # endpointing an utterance that cut the agent off
        self._cut = False  # the current turn was interrupted: its remaining prompts are dropped
        self.interruptions = 0
        self.handover: HandoverSummary | None = None
        self.transfer_result: TransferResult | None = None
        self._keypad: asyncio.Task[None] | None = None  # staff requested with the 0 key

    async def run(self) -> None:
        if self.routed.human_fallback:  # nothing the tenant allows can serve it: staff at once
            await self.divert_to_staff(self.routed.human_fallback)
            return
        with log_context(tenant_id=self.deps.tenant_id, device_id=self.deps.device_id,
                         call_id=self.call.call_id):
            log.info("call answered", extra=fields(caller=self.call.caller))
            listener = asyncio.create_task(self._listen())
            self.deps.load.active += 1
            try:
                if not await self._perform(self.dialog.start(self.deps.clock()), None):
                    await self._converse()
            finally:
                self.deps.load.active -= 1
                listener.cancel()
            log.info("call finished", extra=fields(phase=self.dialog.phase.value))

    async def divert_to_staff(self, reason: str) -> None:
        """Take no order on this call: hand it to staff at once (desired-state kill switch)."""
        with log_context(tenant_id=self.deps.tenant_id, device_id=self.deps.device_id,
                         call_id=self.call.call_id):
            log.warning("not taking orders; call goes to staff", extra=fields(reason=reason))
            try:
                await self._hand_over(Handoff(reason=reason))
            finally:
                self.media.close()

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
            heard = self._heard.pop(id(utt), None)
            self.routed.heard_caller(utt.audio)
            if isinstance(heard, AwaitInFlight):  # the decode started at the pause covers it
                task = self._ahead.pop(heard.generation, None)
                heard = await task if task is not None else None
            speculative = heard is not None
            transcript = heard if heard is not None else await self._transcribe(utt)
            asr_ms = (time.monotonic() - ended_at) * 1000
            kept = bool(transcript.text) and self.deps.store.record_turn(
                self.call.call_id, "caller", transcript.text, self.deps.clock())
            log.info("caller said", extra=fields(text=_loggable(transcript.text, kept),
                                                 asr_ms=round(asr_ms),
                                                 confidence=round(transcript.confidence, 3),
                                                 asr=self.asr.current, speculative=speculative))
            if not transcript.text:
                continue
            actions = self.dialog.on_utterance(transcript.text, self.deps.clock(),
                                               confidence=transcript.confidence)
            if await self._perform(actions, ended_at):
                return
            if self._breach is not None:  # the agent answered, but too slowly to go on
                decision = fallback_decision(latency_breach=self._breach)
                self._breach = None
                if decision is not None and await self._perform(  # the dialog's own escalation
                        self.dialog.escalate(decision.reason), None):
                    return

    async def _transcribe(self, utt: Utterance) -> Transcript:
        """The final decode, failing over as the routing decision says; nothing if all fail."""
        self.asr.turn = self.dialog.turns + 1
        try:
            return await asyncio.to_thread(self.asr.transcribe, utt.audio, self.deps.blueprint.asr_hints)
        except ProviderError as err:
            log.error("no recogniser could decode the turn", extra=fields(error=str(err)))
            return Transcript("", 0.0, int(len(utt.audio) / 8))

    async def _listen(self) -> None:
        """Endpoint caller audio while the agent is idle or being interrupted; queue utterances."""
        async for frame in self.media.frames():
            playing = self.media.playing
            if self.barge_in.feed(frame, playing) and playing and not self._interrupting:
                self._barge_in()
                continue
            if playing or (self._busy and not self._interrupting):
                self.endpointer.reset()
                self.speculator.reset()
                continue
            utt = self.endpointer.feed(frame)
            if utt is not None:
                self._busy, self._interrupting = True, False
                self._queue(utt, self.speculator.finish(self.endpointer.config.end_silence_ms))
            elif self.deps.speculate and self.deps.load.speculation_allowed:
                self._speculate(self.speculator.feed(frame, self.endpointer.in_speech))

    def _speculate(self, step: Launch | EndNow | None) -> None:
        """Start a background decode of the speech so far, or end a turn already understood."""
        if isinstance(step, Launch):
            # Kept until the turn that may await it is taken (older generations are dropped).
            self._ahead = {g: t for g, t in self._ahead.items() if g >= step.generation - 2}
            self._ahead[step.generation] = asyncio.create_task(self._decode_ahead(step))
        elif isinstance(step, EndNow):
            self.endpointer.reset()
            self._busy, self._interrupting = True, False
            log.info("early end of turn", extra=fields(text=step.transcript.text))
            self._queue(Utterance(step.audio, step.speech_ms), step.transcript)

    def _queue(self, utt: Utterance, heard: Heard) -> None:
        if heard is not None:
            self._heard[id(utt)] = heard
        self._utterances.put_nowait((utt, time.monotonic()))

    async def _decode_ahead(self, launch: Launch) -> Transcript | None:
        try:
            heard = await asyncio.to_thread(self.asr.transcribe, launch.audio,
                                            self.deps.blueprint.asr_hints, speculative=True)
        except ProviderError:  # busy or gone: the final decode will fail over if need be
            self.speculator.on_failed(launch.generation)
            return None
        complete = (heard.confidence >= self.deps.blueprint.policy.min_asr_confidence
                    and self.answers.complete(self.dialog, heard.text, self.deps.clock()))
        self._speculate(self.speculator.on_result(launch.generation, launch.upto, heard, complete))
        return heard

    def _barge_in(self) -> None:
        """The caller talks over the agent: silence it and endpoint from the speech onset."""
        self.media.stop_playback()
        self._interrupting = self._cut = True
        self.interruptions += 1
        self.endpointer.reset()
        utt = None
        self.speculator.reset()
        for held in self.barge_in.onset():
            utt = self.endpointer.feed(held) or utt
            self.speculator.feed(held, self.endpointer.in_speech)
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
        """Speak `say`; playback starts once its first sentence is synthesised and the rest
        is synthesised while that plays, so a long prompt does not delay the first word."""
        sentences = self.deps.cached_speech(say.text)
        rest: Iterator[np.ndarray] | None = None
        if sentences is None:
            rest = iter(self.deps.tts.sentences(say.text))
            first = await asyncio.to_thread(next, rest, None)
            sentences = [] if first is None else [first]
        latency_ms = None if ended_at is None else (time.monotonic() - ended_at) * 1000
        if latency_ms is not None:
            self._breach = self.latency.observe(latency_ms) or self._breach
        kept = self.deps.store.record_turn(self.call.call_id, "agent", say.text, self.deps.clock(),
                                           latency_ms)
        log.info("agent says", extra=fields(text=_loggable(say.text, kept), prompt=say.prompt,
                                            turn_latency_ms=latency_ms and round(latency_ms)))
        if sentences:
            self.barge_in.start_prompt(speech_level_db(np.concatenate(sentences)))
        plays = [asyncio.create_task(self.media.play(s)) for s in sentences]
        if rest is not None:
            more = await asyncio.to_thread(list, rest)
            self.deps.remember_speech(say.text, sentences + more)
            if not self._cut:  # the caller did not barge in while the rest was synthesised
                plays += [asyncio.create_task(self.media.play(s)) for s in more]
                sentences = sentences + more
        # TTS usage: the seconds of speech queued to the caller, cached prompts included.
        await asyncio.to_thread(self.routed.spoke, sum(len(s) for s in sentences) / TELEPHONE_RATE)
        await asyncio.gather(*plays)

    def on_dtmf(self, digit: str) -> None:
        """A key the caller pressed (RFC 4733 or SIP INFO; the media layer calls this).
        0 asks for staff: the handover runs at once, whatever the dialog was doing."""
        log.info("caller pressed a key", extra=fields(digit=digit))
        decision = fallback_decision(dtmf=digit)  # the one place that decides handovers
        if decision is not None and self._keypad is None and not self.media.closed.is_set():
            self._keypad = asyncio.create_task(self._keypad_handover(decision.reason))

    async def _keypad_handover(self, reason: str) -> None:
        self._busy = True  # caller audio is no longer an utterance
        self.media.stop_playback()
        try:
            await self._hand_over(Handoff(reason=reason))
        finally:
            self.media.close()  # the conversation ends; the agent hangs up if still up

    async def _hand_over(self, handoff: Handoff) -> None:
        """Summarise the call for staff, REFER it to the staff line if one is set, else (or
        if that fails) record a callback, arm its reminder and tell the caller when; either
        way the summary is queued as a slip for the kitchen printer."""
        decision = fallback_decision(dialog_reason=handoff.reason)
        log.warning("handoff requested", extra=fields(
            reason=handoff.reason, trigger=decision.trigger.value if decision else ""))
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
