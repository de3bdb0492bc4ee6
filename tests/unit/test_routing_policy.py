"""The box routes exactly by the routing policy the cloud publishes (DesiredState.routing):
a provider the tenant does not allow is never chosen, not even as the last resort, and a
call nothing allowed can serve goes to staff with the reason on record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions
from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.call_routing import decide, session_facts
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.providers import (
    BUILTIN,
    Health,
    ProviderDescriptor,
    ProviderKind,
    ProviderRegistry,
)
from appliance.voice.routing import SessionFacts, route, tenant_routing
from appliance.voice.sip_dialog import CallInfo
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin
from cloud.control.flags import RoutingPolicy

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# DesiredState.routing as cloud/control/flags.py RoutingPolicy.published() writes it (the
# keys copied from there and from tests/cloud/test_flags_api.py): "piper" is an engine family.
WIRE = {"tier": "premium", "allowed_providers": ["whisper-base", "piper"],
        "cost_cap_per_audio_s": 0.002}
PAID = ProviderDescriptor(name="cloud-asr", kind=ProviderKind.ASR, languages=["en"], rtf=0.05,
                          latency_ms=150, quality=0.99, noise_robustness=0.9,
                          cost_per_audio_s=0.004)


def healthy() -> dict[str, Health]:
    return ProviderRegistry().states()


def test_the_clouds_wire_form_round_trips_into_the_decision() -> None:
    assert RoutingPolicy.model_validate(WIRE).published() == WIRE  # the cloud sends this dict
    tenant = tenant_routing(WIRE)
    assert tenant.tier == "premium" and tenant.allowed_providers == ["whisper-base", "piper"]
    d = route(SessionFacts(tenant=tenant), BUILTIN, healthy())
    assert d.asr == ["whisper-base"]  # tiny and pocketsphinx are healthy but not allowed
    assert d.tts == ["piper-joe"]  # allowed by its family name
    assert d.nlu == ["rule-nlu"]  # the list names no NLU: that kind stays open
    assert "whisper-tiny.en excluded: not in the tenant's allowed_providers" in d.reasons
    assert "pocketsphinx excluded: not in the tenant's allowed_providers" in d.reasons


def test_a_disallowed_provider_is_never_a_fallback_and_none_left_goes_to_staff(
        tmp_path: Path) -> None:
    reg = ProviderRegistry()
    reg.mark("whisper-base", Health.DEAD, T0, "EOF")
    facts = session_facts(compose_builtin("restaurant_orders", "demo_pizza"), WIRE, None)
    d = decide(facts, reg)
    assert d.asr == [] and d.human_fallback is not None
    assert "no asr provider can serve this call" in d.human_fallback
    assert "whisper-base excluded: dead" in d.human_fallback
    assert "whisper-tiny.en excluded: not in the tenant's allowed_providers" in d.human_fallback
    # Unrestricted, the same dead engine would just have fallen through to the next one.
    assert decide(facts.model_copy(update={"tenant": tenant_routing({})}), reg).asr[0] == \
        "whisper-tiny.en"


def test_tier_last_resort_stays_within_the_allowed_list_and_caps_still_apply() -> None:
    tenant = tenant_routing({"tier": "basic", "allowed_providers": ["whisper-base", "pocketsphinx",
                                                                    "cloud-asr"],
                             "cost_cap_per_audio_s": 0.002})
    d = route(SessionFacts(tenant=tenant), (*BUILTIN, PAID), healthy())
    assert d.asr == ["pocketsphinx", "whisper-base"]  # base past its tier, tiny never
    assert "cloud-asr excluded: cost 0.004/s over the cap 0.002/s" in d.reasons


def test_a_malformed_policy_keeps_its_valid_keys_so_the_allowed_list_still_holds() -> None:
    bad = {"tier": "gold", "allowed_providers": ["pocketsphinx"]}
    facts = session_facts(compose_builtin("restaurant_orders", "demo_pizza"), bad, None)
    assert facts.tenant.tier == "standard" and facts.tenant.allowed_providers == ["pocketsphinx"]
    assert decide(facts, ProviderRegistry()).asr == ["pocketsphinx"]


class _Line:
    """The caller's side of the call: nothing heard, what is played kept."""

    def __init__(self) -> None:
        self.closed, self.playing, self.played = asyncio.Event(), False, 0

    async def frames(self) -> AsyncIterator[np.ndarray]:
        await self.closed.wait()
        return
        yield

    async def play(self, pcm: np.ndarray) -> None:
        self.played += len(pcm)

    def close(self) -> None:
        self.closed.set()


def test_an_unroutable_call_goes_to_staff_with_the_reason_recorded(tmp_path: Path) -> None:
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    store = LocalStore(tmp_path / "box.sqlite3")
    sessions = CallSessions(store)
    providers = ProviderRegistry()
    providers.mark("whisper-base", Health.DEAD, T0, "EOF")
    tools = OrderTools(store, bp, "ten_r", "dev_r")
    deps = VoiceDeps(blueprint=bp, asr=WhisperAsr(), tts=PiperTts(), store=store, tools=tools,
                     tenant_id="ten_r", device_id="dev_r", providers=providers, sessions=sessions,
                     routing_prefs=lambda: WIRE, clock=lambda: T0)
    line = _Line()
    session = CallSession(deps, CallInfo("call_r", "sip-r", "sip:r@x", "+15550001", "order",
                                         ("127.0.0.1", 5060)), line)  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(session.run(), timeout=60))
    assert line.closed.is_set() and session.dialog.turns == 0  # no conversation at all
    [follow_up] = tools.book.follow_ups()
    assert follow_up.kind == "callback" and "no allowed provider" in follow_up.reason
    said = [t.text for t in store.turns("call_r") if t.speaker == "agent"]
    assert said and "call you back" in said[-1] and line.played > 0  # the caller is told
    rec = sessions.get("call_r")
    assert rec is not None and rec.routing["asr"] == []
    assert "whisper-base excluded: dead" in rec.routing["human_fallback"]
    sessions.close()
    store.close()
