"""One call's routing: the decision, its call_sessions row, and the recogniser that fails over.

Kept out of call_session so the conversation loop reads as a conversation: the session
asks this object for a transcript and never sees which engine, worker or fallback gave it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime

import numpy as np
from pydantic import ValidationError

from appliance.store.call_sessions import CallSessions
from appliance.voice.asr_failover import Failover, FailoverAsr, Resolve
from appliance.voice.providers import Health, ProviderKind, ProviderRegistry
from appliance.voice.routing import (
    RoutingDecision,
    RoutingError,
    SessionFacts,
    TenantRouting,
    estimate_snr_db,
    route,
    tenant_routing,
)
from blueprints.model import Blueprint
from sync.ids import new_id
from sync.structured_log import fields

log = logging.getLogger(__name__)

Preload = Callable[[str], object]  # provider name -> start loading it now (AsrPool.preload)


def session_facts(blueprint: Blueprint, prefs: Mapping[str, object] | None,
                  preferred_asr: str | None) -> SessionFacts:
    """What routing needs to know at call start; a bad `routing` desired state is logged and
    replaced by the defaults, never allowed to stop the call."""
    try:
        tenant = tenant_routing(prefs)
    except ValueError as err:  # keep every key that is valid on its own (allowed_providers!)
        kept = {k: v for k, v in (prefs or {}).items() if _valid_key(k, v)}
        log.error("tenant routing partly ignored", extra=fields(error=str(err), kept=sorted(kept)))
        tenant = TenantRouting.model_validate(kept)
    return SessionFacts(domain=blueprint.sector, latency_budget_ms=blueprint.policy.latency_budget_ms,
                        tenant=tenant, preferred_asr=preferred_asr)


def _valid_key(key: str, value: object) -> bool:
    try:
        TenantRouting.model_validate({key: value})
    except ValidationError:
        return False
    return key in TenantRouting.model_fields


def decide(facts: SessionFacts, providers: ProviderRegistry) -> RoutingDecision:
    """The routing decision; when no provider the tenant allows can serve a kind (none
    allowed, or all of them dead), a decision with no providers and the reason for staff."""
    try:
        return route(facts, providers.descriptors.values(), providers.states())
    except RoutingError as err:
        return RoutingDecision(asr=[], tts=[], nlu=[], reasons=[str(err)],
                               human_fallback=f"no allowed provider can serve the call: {err}")


class CallRouting:
    """The decision for one call, recorded in `sessions`, and its failing-over recogniser."""

    def __init__(self, *, call_id: str, tenant_id: str, device_id: str, facts: SessionFacts,
                 providers: ProviderRegistry, resolve: Resolve, sessions: CallSessions | None,
                 clock: Callable[[], datetime], preload: Preload | None = None) -> None:
        self.call_id, self.facts, self.providers, self._preload = call_id, facts, providers, preload
        self.decision = decision = decide(facts, providers)
        self.sessions, self.clock = sessions, clock
        self.session_id = new_id("ses")
        if sessions is not None:
            self.session_id = sessions.open(call_id=call_id, tenant_id=tenant_id, device_id=device_id,
                                            routing=decision.model_dump(), now=clock()).session_id
        self.failovers: list[Failover] = []
        self.human_fallback = decision.human_fallback  # set: the call goes to staff at once
        # Unroutable calls never decode; the placeholder keeps `asr` typed for the session.
        self.asr = FailoverAsr(decision.asr or ["none"], resolve, self._failed_over, self._decoded)
        if sessions is not None and not self.human_fallback:  # listed even at zero use
            for kind in (ProviderKind.TTS, ProviderKind.NLU):
                if (name := decision.chosen[kind.value]):
                    sessions.add_usage(self.session_id, provider=name, kind=kind.value, now=clock())
        if self.human_fallback:
            log.warning("call not routable; goes to staff", extra=fields(
                session_id=self.session_id, reason=self.human_fallback))
        else:
            log.info("call routed", extra=fields(session_id=self.session_id, **decision.chosen))
            self._preload_fallback()

    def heard_caller(self, audio: np.ndarray) -> None:
        """The first utterance tells how noisy the line is: route again with its SNR and, if
        the recogniser order changes before anything failed, follow the new order."""
        if self.facts.snr_db is not None:
            return
        frames = [audio[i:i + 160] for i in range(0, len(audio) - 159, 160)]
        self.facts = self.facts.model_copy(update={"snr_db": estimate_snr_db(frames)})
        again = decide(self.facts, self.providers)
        if again.human_fallback or again.asr == self.decision.asr or self.failovers or self.asr.index != 0:
            return
        log.info("call re-routed for the line's noise", extra=fields(
            session_id=self.session_id, snr_db=self.facts.snr_db, asr=again.asr[0]))
        self.decision = again
        self.asr.order = list(again.asr)
        if self.sessions is not None:
            self.sessions.set_routing(self.session_id, again.model_dump(), self.clock())
        self._preload_fallback()

    def _preload_fallback(self) -> None:
        """Start loading the decision's second recogniser in the background, so a failover
        mid-call costs a decode, not a model load (~2.5 s for Whisper base on two cores).

        At call start rather than service start: the second engine depends on the tenant's
        routing and the line, and an engine no call falls back to should not hold memory.
        The pool keeps what it loaded, so only the first call after a start pays the load,
        and it does so while the greeting plays."""
        if self._preload is not None and len(self.decision.asr) > 1:
            self._preload(self.decision.asr[1])

    def spoke(self, seconds: float) -> None:
        """Synthesised speech queued to the caller: TTS seconds and cost for the session."""
        if (name := self.decision.chosen.get(ProviderKind.TTS.value)) and seconds > 0:
            self.used(name, ProviderKind.TTS, seconds=seconds)

    def _decoded(self, provider: str, seconds: float) -> None:
        """A final decode by `provider` (worker thread): add its audio and cost to the session."""
        self.used(provider, ProviderKind.ASR, seconds=seconds)

    def used(self, provider: str, kind: ProviderKind, *, seconds: float = 0.0,
             tokens: int = 0) -> None:
        """Add use of `provider` to the session at its descriptor's rates (tokens: an LLM
        NLU; the rule engine spends none); a failure is logged and dropped, because usage
        must never stop a call."""
        if self.sessions is None:
            return
        descriptor = self.providers.descriptors.get(provider)
        cost = (seconds * descriptor.cost_per_audio_s + tokens / 1000 * descriptor.cost_per_1k_tokens
                if descriptor is not None else 0.0)
        try:
            self.sessions.add_usage(self.session_id, provider=provider, kind=kind.value,
                                    seconds=seconds, tokens=tokens, cost_cents=cost, now=self.clock())
        except (sqlite3.Error, KeyError, ValueError) as err:
            log.error("call usage not recorded", extra=fields(
                session_id=self.session_id, call_id=self.call_id, provider=provider,
                kind=kind.value, error=str(err)))

    def _failed_over(self, event: Failover) -> None:
        """A provider died mid-call (called on a worker thread): record, log, mark it dead."""
        self.failovers.append(event)
        self.providers.mark(event.from_provider, Health.DEAD, self.clock(), event.error)
        log.warning("asr failover", extra=fields(
            session_id=self.session_id, call_id=self.call_id, from_provider=event.from_provider,
            to_provider=event.to_provider, error=event.error))
        if self.sessions is not None:
            self.sessions.add_failover(self.session_id, event.model_dump(), self.clock())
