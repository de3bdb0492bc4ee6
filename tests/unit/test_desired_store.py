"""The box's desired-state rows and the composer that validates a desired state, on a real
SQLite file: newest version in force, stale versions ignored, rejections keep the old."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.desired_blueprint import DesiredComposer, DesiredInvalid
from appliance.store import LocalStore, desired_state
from sync.contracts.errors import ErrorEnvelope
from sync.contracts.messages import CommandOutcome, DesiredState

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
OVERLAY = yaml.safe_load(
    (Path(__file__).parents[2] / "blueprints" / "tenants" / "demo_pizza.yaml").read_text())


def desired(version: int, **kw: Any) -> DesiredState:
    return DesiredState(tenant_id="ten_a", device_id="dev_a", version=version, issued_at=NOW, **kw)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "box.sqlite3")


def test_newest_version_is_in_force_and_equal_or_older_ones_are_stale(store: LocalStore) -> None:
    with store.transaction() as conn:
        assert desired_state.in_force(conn) is None and desired_state.highest_seen(conn) == 0
        assert desired_state.apply(conn, desired(2), "h2", NOW) == "applied"
        assert desired_state.apply(conn, desired(2), "h2", NOW) == "stale"
        assert desired_state.apply(conn, desired(1), "h1", NOW) == "stale"
        applied = desired_state.in_force(conn)
    assert applied is not None and applied.desired.version == 2 and applied.blueprint_hash == "h2"


def test_a_rejection_keeps_the_old_state_and_is_history_once_superseded(store: LocalStore) -> None:
    error = ErrorEnvelope(code="desired.blueprint_invalid", category="validation", message="bad")
    with store.transaction() as conn:
        desired_state.apply(conn, desired(1), "h1", NOW)
        assert desired_state.reject(conn, 2, error, NOW) == "rejected"
        assert desired_state.reject(conn, 2, error, NOW) == "stale"
        assert desired_state.apply(conn, desired(2), "h2", NOW) == "stale"  # seen: rejected
        force, rejection = desired_state.in_force(conn), desired_state.latest_rejection(conn)
        assert force is not None and force.desired.version == 1
        assert rejection is not None and rejection.version == 2 and rejection.error == error
        desired_state.apply(conn, desired(3), "h3", NOW)
        assert desired_state.latest_rejection(conn) is None


def test_a_failed_transaction_applies_nothing(store: LocalStore) -> None:
    with pytest.raises(RuntimeError), store.transaction() as conn:
        desired_state.apply(conn, desired(1), "h1", NOW)
        raise RuntimeError("crash between write and commit")
    with store.transaction() as conn:
        assert desired_state.in_force(conn) is None


def test_command_outcomes_are_kept_once_and_reported_until_marked(store: LocalStore) -> None:
    first = CommandOutcome(command_id="cmd_1", kind="resync", status="applied", at=NOW)
    with store.transaction() as conn:
        assert desired_state.record_outcome(conn, first, None)
        assert not desired_state.record_outcome(conn, first.model_copy(
            update={"status": "rejected"}), None)
        assert desired_state.unreported_outcomes(conn) == [first]
        desired_state.mark_reported(conn, ["cmd_1"], NOW)
        assert desired_state.unreported_outcomes(conn) == []
        desired_state.unreport(conn, "cmd_1")
        assert desired_state.outcome(conn, "cmd_1") == first
        assert desired_state.unreported_outcomes(conn) == [first]


def test_composer_hashes_a_valid_overlay_and_menu() -> None:
    composer = DesiredComposer()
    base = composer.blueprint_hash(desired(1, blueprint_overlay=OVERLAY))
    renamed = composer.blueprint_hash(desired(2, blueprint_overlay={**OVERLAY, "restaurant": "X"}))
    menu = {**OVERLAY["menu"], "menu_hint": "pizza, drinks and garlic bread"}
    with_menu = composer.blueprint_hash(desired(3, menu=menu))  # on the configured overlay
    assert base and renamed and with_menu and len({base, renamed, with_menu}) == 3
    assert composer.blueprint_hash(desired(4, flags={"answer_calls": False})) is None


def test_composer_rejects_an_invalid_menu_and_names_where() -> None:
    menu = {**OVERLAY["menu"], "items": [{**OVERLAY["menu"]["items"][0], "options": ["unicorn"]}]}
    with pytest.raises(DesiredInvalid) as err:
        DesiredComposer().compose(desired(5, menu=menu))
    envelope = err.value.envelope
    assert envelope.code == "desired.blueprint_invalid" and envelope.category == "validation"
    assert "desired-v5.yaml" in envelope.message and "unicorn" in envelope.message
    assert envelope.correlation.device_id == "dev_a"
