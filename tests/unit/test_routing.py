"""Routing: session facts + provider health -> ordered providers with reasons (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions
from appliance.voice.providers import (
    BUILTIN,
    Health,
    ProviderDescriptor,
    ProviderKind,
    ProviderRegistry,
)
from appliance.voice.routing import (
    RoutingError,
    SessionFacts,
    TenantRouting,
    estimate_snr_db,
    route,
    tenant_routing,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RNG = np.random.default_rng(3)


def healthy() -> dict[str, Health]:
    return ProviderRegistry().states()


def test_default_call_gets_tiny_first_then_base_then_pocketsphinx() -> None:
    d = route(SessionFacts(domain="restaurant_orders"), BUILTIN, healthy())
    assert d.asr == ["whisper-tiny.en", "whisper-base", "pocketsphinx"]
    assert d.chosen == {"asr": "whisper-tiny.en", "tts": "piper-joe", "nlu": "rule-nlu"}
    assert any("whisper-base ranked down" in r for r in d.reasons)  # 520 ms > 500 ms share
    assert any("pocketsphinx ranked last" in r for r in d.reasons)


def test_generous_budget_prefers_the_more_accurate_base() -> None:
    d = route(SessionFacts(latency_budget_ms=3000), BUILTIN, healthy())
    assert d.asr[:2] == ["whisper-base", "whisper-tiny.en"]


def test_basic_tier_excludes_base_and_a_dead_provider_is_never_routed() -> None:
    health = healthy() | {"whisper-tiny.en": Health.DEAD}
    d = route(SessionFacts(tenant=TenantRouting(tier="basic")), BUILTIN, health)
    assert "whisper-tiny.en" not in d.asr
    assert d.asr == ["pocketsphinx", "whisper-base"]  # base only as the last resort past its tier
    assert any("whisper-tiny.en excluded: dead" in r for r in d.reasons)
    assert any("tier standard needed" in r for r in d.reasons)


def test_degraded_goes_after_healthy() -> None:
    health = healthy() | {"whisper-tiny.en": Health.DEGRADED}
    assert route(SessionFacts(), BUILTIN, health).asr[0] == "whisper-base"


def test_noisy_line_ranks_by_robustness() -> None:
    d = route(SessionFacts(snr_db=8.0, latency_budget_ms=3000), BUILTIN, healthy())
    assert d.asr[0] == "whisper-base" and any("noisy line" in r for r in d.reasons)


def test_cost_cap_and_language_and_domain_filter() -> None:
    paid = ProviderDescriptor(name="cloud-asr", kind=ProviderKind.ASR, languages=["en", "nl"],
                              domains=["restaurant_orders"], rtf=0.05, latency_ms=150, quality=0.99,
                              noise_robustness=0.9, cost_per_audio_s=0.0004)
    providers = (*BUILTIN, paid)
    assert route(SessionFacts(domain="restaurant_orders"), providers, healthy()).asr[0] == "cloud-asr"
    capped = SessionFacts(domain="restaurant_orders",
                          tenant=tenant_routing({"cost_cap_per_audio_s": 0.0001}))
    assert "cloud-asr" not in route(capped, providers, healthy()).asr
    assert "cloud-asr" not in route(SessionFacts(domain="reservations"), providers, healthy()).asr
    with pytest.raises(RoutingError, match="no asr provider"):
        route(SessionFacts(language="nl"), BUILTIN, healthy())


def test_all_dead_raises_and_bad_desired_state_is_refused_clearly() -> None:
    dead = {name: Health.DEAD for name in healthy()}
    with pytest.raises(RoutingError):
        route(SessionFacts(), BUILTIN, dead)
    with pytest.raises(ValueError, match="routing"):
        tenant_routing({"tier": "platinum"})
    assert tenant_routing(None).tier == "standard"


def test_snr_estimate_separates_a_quiet_line_from_a_noisy_one() -> None:
    def frames(noise: float, speech: float) -> list[np.ndarray]:
        quiet = [(RNG.standard_normal(160) * noise).astype(np.int16) for _ in range(50)]
        loud = [(RNG.standard_normal(160) * speech).astype(np.int16) for _ in range(50)]
        return quiet + loud

    clean, noisy = estimate_snr_db(frames(30, 6000)), estimate_snr_db(frames(1500, 6000))
    assert clean is not None and noisy is not None and clean > 30 > 15 > noisy
    assert estimate_snr_db([]) is None


def test_registry_marks_health_with_error_and_time() -> None:
    reg = ProviderRegistry()
    h = reg.mark("whisper-tiny.en", Health.DEAD, T0, "EOF; exit code -9")
    assert h.state is Health.DEAD and h.failures == 1 and h.since == T0
    assert reg.states()["whisper-tiny.en"] is Health.DEAD
    assert reg.mark("whisper-tiny.en", Health.HEALTHY, T0).failures == 0


def test_call_session_row_keeps_decision_and_failovers(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    sessions = CallSessions(store)
    decision = route(SessionFacts(), BUILTIN, healthy())
    rec = sessions.open(call_id="c1", tenant_id="ten_a", device_id="dev_a",
                        routing=decision.model_dump(), now=T0)
    again = sessions.open(call_id="c1", tenant_id="ten_a", device_id="dev_a", routing={}, now=T0)
    assert rec.session_id.startswith("ses_") and again.session_id == rec.session_id
    sessions.add_failover(rec.session_id, {"from_provider": "whisper-tiny.en",
                                           "to_provider": "whisper-base"}, T0)
    got = sessions.get("c1")
    assert got is not None and got.routing["asr"][0] == "whisper-tiny.en"
    assert [f["to_provider"] for f in got.failovers] == ["whisper-base"]
    with pytest.raises(ValueError):
        sessions.add_failover("ord_01JD3ZZZZZZZZZZZZZZZZZZZZZ", {}, T0)
    assert [r.call_id for r in sessions.recent()] == ["c1"]
    sessions.close()
    store.close()
