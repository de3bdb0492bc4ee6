"""Which engines serve a call, and in which order to fall back: a pure function of the facts.

Facts are the caller's language, the blueprint's sector, the line's noise (SNR estimated
from frames), the policy's latency budget, the tenant's tier, cost caps and allowed providers
(the `routing` section of the applied desired state, as cloud/control/flags.py RoutingPolicy
publishes it) and provider health. The decision keeps every eligible engine in order, so a
provider that dies mid-call has a successor, and says why. A provider the tenant does not
allow is never chosen, not even as a last resort: the tenant may not have a contract with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from appliance.voice.providers import TIERS, Health, ProviderDescriptor, ProviderKind

ASR_SHARE_OF_BUDGET = 1 / 3  # the rest of a turn's budget is endpointing slack, dialog and TTS
FINAL_WORD_QUALITY = 0.9  # below this an ASR suits partials and last resorts, not final words
NOISY_SNR_DB = 15.0  # below this the line counts as noisy: robustness outranks accuracy
ASSUMED_SPEECH_DBFS = -20.0  # a phone caller's typical level when no speech was heard yet


class RoutingError(ValueError):
    """No provider of a kind can serve the call at all (all dead or none registered)."""


class TenantRouting(BaseModel):
    """The `routing` section of a tenant's desired state; absent keys keep the defaults."""

    tier: str = Field(default="standard", pattern="^(basic|standard|premium)$")
    cost_cap_per_audio_s: float | None = Field(default=None, ge=0)
    cost_cap_per_1k_tokens: float | None = Field(default=None, ge=0)
    allowed_providers: list[str] | None = Field(default=None, max_length=64)

    def allows(self, name: str) -> bool:
        """`name` is listed, or its engine family is ("piper" allows "piper-joe")."""
        return self.allowed_providers is None or any(
            name == a or name.startswith(f"{a}-") for a in self.allowed_providers)


class SessionFacts(BaseModel):
    """What is known about a call when its providers are chosen."""

    language: str = "en"
    domain: str = ""
    snr_db: float | None = None  # None: nothing heard yet, the line is assumed clean
    latency_budget_ms: int = Field(default=1500, ge=1)
    preferred_asr: str | None = None  # the operator's configured model, first when eligible
    tenant: TenantRouting = Field(default_factory=TenantRouting)


class RoutingDecision(BaseModel):
    """Chosen providers first, then the fallbacks in order, with the reasons for both."""

    asr: list[str]
    tts: list[str]
    nlu: list[str]
    reasons: list[str] = Field(default_factory=list)
    human_fallback: str | None = None  # why no provider may serve the call: it goes to staff

    @property
    def chosen(self) -> dict[str, str]:
        return {"asr": self.asr[0] if self.asr else "", "tts": self.tts[0] if self.tts else "",
                "nlu": self.nlu[0] if self.nlu else ""}


def tenant_routing(desired: Mapping[str, object] | None) -> TenantRouting:
    """The tenant's routing preferences from desired state; a malformed section is refused
    with a message naming the key, never half-applied."""
    if not desired:
        return TenantRouting()
    try:
        return TenantRouting.model_validate(desired)
    except ValidationError as err:
        raise ValueError(f"desired state `routing` is invalid: {err}") from err


def estimate_snr_db(frames: Iterable[np.ndarray]) -> float | None:
    """Speech level (90th percentile of 20 ms frame levels) over the noise floor (10th);
    None when there is no audio. Line-only audio assumes a typical caller's level."""
    levels = []
    for f in frames:
        if f.size:
            rms = float(np.sqrt(np.mean(f.astype(np.float64) ** 2)))
            levels.append(20 * np.log10(max(rms, 1.0) / 32768.0))
    if not levels:
        return None
    noise, loud = float(np.percentile(levels, 10)), float(np.percentile(levels, 90))
    speech = loud if loud - noise > 10.0 else ASSUMED_SPEECH_DBFS
    return round(speech - noise, 1)


def route(facts: SessionFacts, providers: Iterable[ProviderDescriptor],
          health: Mapping[str, Health]) -> RoutingDecision:
    """Rank each kind's providers for this call; raises RoutingError if a kind has none."""
    reasons: list[str] = []
    by_kind: dict[ProviderKind, list[str]] = {}
    all_providers = list(providers)
    for kind in ProviderKind:
        allowed = _allowed(facts.tenant, kind, [p for p in all_providers if p.kind is kind],
                           reasons)
        ranked = _rank(facts, allowed, health, reasons)
        if not ranked:
            raise RoutingError(f"no {kind.value} provider can serve this call: {'; '.join(reasons)}")
        reasons.append(f"{kind.value}: {ranked[0]} chosen" +
                       (f", then {', '.join(ranked[1:])}" if ranked[1:] else ""))
        by_kind[kind] = ranked
    return RoutingDecision(asr=by_kind[ProviderKind.ASR], tts=by_kind[ProviderKind.TTS],
                           nlu=by_kind[ProviderKind.NLU], reasons=reasons)


def _allowed(tenant: TenantRouting, kind: ProviderKind, candidates: list[ProviderDescriptor],
             reasons: list[str]) -> list[ProviderDescriptor]:
    """The candidates the tenant allows. The cloud's list is flat across kinds (the test
    policy names ASR and TTS engines only), so a kind it names nothing of stays open."""
    if tenant.allowed_providers is None:
        return candidates
    allowed = [p for p in candidates if tenant.allows(p.name)]
    if not allowed:
        reasons.append(f"{kind.value}: allowed_providers names none, every {kind.value} allowed")
        return candidates
    reasons.extend(f"{p.name} excluded: not in the tenant's allowed_providers"
                   for p in candidates if p not in allowed)
    return allowed


def _rank(facts: SessionFacts, candidates: list[ProviderDescriptor], health: Mapping[str, Health],
          reasons: list[str]) -> list[str]:
    """Eligible providers best first; ineligible-but-alive ones last, as a final resort."""
    tier = TIERS.index(facts.tenant.tier)
    noisy = facts.snr_db is not None and facts.snr_db < NOISY_SNR_DB
    asr_budget = facts.latency_budget_ms * ASR_SHARE_OF_BUDGET
    eligible: list[tuple[tuple[float, ...], str]] = []
    resort: list[str] = []
    for p in candidates:
        state = health.get(p.name, Health.HEALTHY)
        why = _excluded(facts, p, state, tier)
        if why:
            reasons.append(f"{p.name} excluded: {why}")
            if state is not Health.DEAD and why.startswith("tier"):  # a cost cap is never passed
                resort.append(p.name)
            continue
        over_budget = p.kind is ProviderKind.ASR and p.latency_ms > asr_budget
        if over_budget:
            reasons.append(f"{p.name} ranked down: {p.latency_ms} ms over the ASR share "
                           f"({asr_budget:.0f} ms) of the {facts.latency_budget_ms} ms budget")
        weak = p.kind is ProviderKind.ASR and p.quality < FINAL_WORD_QUALITY
        if weak:
            reasons.append(f"{p.name} ranked last: quality {p.quality} is for partials")
        score = p.quality * (p.noise_robustness if noisy else 1.0)
        preferred = p.name == facts.preferred_asr
        key = (state is Health.DEGRADED, not preferred, weak, over_budget, -round(score, 3),
               p.latency_ms)
        eligible.append((key, p.name))
    if noisy:
        reasons.append(f"noisy line ({facts.snr_db} dB SNR): ranked by robustness x accuracy")
    ranked = [name for _, name in sorted(eligible)]
    if not ranked and resort:
        reasons.append(f"nothing within the tenant's tier: falling back to {resort[0]}")
    return ranked + resort


def _excluded(facts: SessionFacts, p: ProviderDescriptor, state: Health, tier: int) -> str:
    if state is Health.DEAD:
        return "dead"
    if facts.language not in p.languages:
        return f"no {facts.language}"
    if p.domains and facts.domain not in p.domains:
        return f"not for {facts.domain or 'this sector'}"
    if TIERS.index(p.min_tier) > tier:
        return f"tier {p.min_tier} needed, tenant has {facts.tenant.tier}"
    cap = facts.tenant.cost_cap_per_audio_s
    if cap is not None and p.cost_per_audio_s > cap:
        return f"cost {p.cost_per_audio_s}/s over the cap {cap}/s"
    cap_tok = facts.tenant.cost_cap_per_1k_tokens
    if cap_tok is not None and p.cost_per_1k_tokens > cap_tok:
        return f"cost {p.cost_per_1k_tokens}/1k tokens over the cap {cap_tok}"
    return ""
