"""At call start the desired state in force decides the blueprint and whether the box takes
the call at all (`answer_calls` false: the call goes to staff, no order is taken)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.desired_blueprint import DesiredComposer
from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore, desired_state
from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.call_session import VoiceDeps
from appliance.voice.desired_in_force import DesiredInForce
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin
from sync.contracts.messages import DesiredState

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
OVERLAY = yaml.safe_load(
    (Path(__file__).parents[2] / "blueprints" / "tenants" / "demo_pizza.yaml").read_text())


@pytest.fixture
def deps(tmp_path: Path) -> VoiceDeps:
    store = LocalStore(tmp_path / "box.sqlite3")
    blueprint = compose_builtin("restaurant_orders", "demo_pizza")
    return VoiceDeps(blueprint=blueprint, asr=WhisperAsr(), tts=PiperTts(), store=store,
                     tools=OrderTools(store, blueprint, "ten_a", "dev_a"),
                     tenant_id="ten_a", device_id="dev_a")


def apply(deps: VoiceDeps, version: int, **kw: Any) -> None:
    desired = DesiredState(tenant_id="ten_a", device_id="dev_a", version=version,
                           issued_at=NOW, **kw)
    with deps.store.transaction() as conn:
        desired_state.apply(conn, desired, DesiredComposer().blueprint_hash(desired), NOW)


def test_without_desired_state_calls_are_answered_with_the_configured_blueprint(
    deps: VoiceDeps,
) -> None:
    assert DesiredInForce(DesiredComposer()).for_call(deps) == (deps, True)


def test_kill_switch_sends_calls_to_staff(deps: VoiceDeps) -> None:
    policy = DesiredInForce(DesiredComposer())
    apply(deps, 1, flags={"answer_calls": False})
    call_deps, answer = policy.for_call(deps)
    assert answer is False and call_deps is deps
    apply(deps, 2, flags={"answer_calls": True})
    assert policy.for_call(deps)[1] is True


def test_the_desired_overlay_is_the_next_calls_blueprint(deps: VoiceDeps) -> None:
    policy = DesiredInForce(DesiredComposer())
    apply(deps, 1, blueprint_overlay={**OVERLAY, "restaurant": "Luigi's"})
    call_deps, answer = policy.for_call(deps)
    assert answer is True and call_deps is not deps
    assert call_deps.blueprint.content_hash != deps.blueprint.content_hash
    assert "Luigi's" in str(call_deps.blueprint.prompt_values())
    assert call_deps.tools is not deps.tools and call_deps.store is deps.store
    again, _ = policy.for_call(deps)
    assert again.blueprint is call_deps.blueprint  # composed once per version
