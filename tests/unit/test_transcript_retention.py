"""The tenant's transcripts_days on the box: turns past it are pruned, 0 stores none, and
orders and their outbox events (business records, not transcripts) are never touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.store import LocalStore, desired_state
from sync.contracts.messages import DesiredState, TenantPolicy
from sync.contracts.order import OrderLine

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
LINE = OrderLine(line_id="l1", item_id="pizza", name="Pizza", quantity=1, unit_price_cents=1200)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "box.sqlite3")


def apply_policy(store: LocalStore, version: int, policy: TenantPolicy | None) -> None:
    desired = DesiredState(tenant_id="ten_a", device_id="dev_a", version=version, issued_at=NOW,
                           policy=policy)
    with store.transaction() as conn:
        assert desired_state.apply(conn, desired, None, NOW) == "applied"


def order_and_turns(store: LocalStore, call_id: str, at: datetime) -> None:
    store.submit_order(tenant_id="ten_a", device_id="dev_a", call_id=call_id, caller="555",
                       lines=[LINE], currency="USD", blueprint_hash="h",
                       idempotency_key=f"{call_id}:submit", now=at)
    assert store.record_turn(call_id, "agent", "What would you like?", at)
    assert store.record_turn(call_id, "caller", "a large pizza", at + timedelta(seconds=3))


def test_without_a_policy_turns_are_kept(store: LocalStore) -> None:
    order_and_turns(store, "call_old", NOW - timedelta(days=400))
    assert store.prune_turns(NOW) == (0, None)
    apply_policy(store, 1, TenantPolicy(calls_per_min=5))  # a policy without a retention
    assert store.prune_turns(NOW) == (0, None)
    assert len(store.turns("call_old")) == 2


def test_turns_past_the_retention_are_pruned_and_orders_kept(store: LocalStore) -> None:
    order_and_turns(store, "call_old", NOW - timedelta(days=31))
    order_and_turns(store, "call_new", NOW - timedelta(days=29))
    apply_policy(store, 1, TenantPolicy(transcripts_days=30))
    deleted, cutoff = store.prune_turns(NOW)
    assert (deleted, cutoff) == (2, NOW - timedelta(days=30))
    assert store.turns("call_old") == []
    assert [t.text for t in store.turns("call_new")] == ["What would you like?", "a large pizza"]
    assert {o.call_id for o in store.orders()} == {"call_old", "call_new"}
    assert len(store.pending_events()) == 2  # their order.submitted events stay queued
    assert store.prune_turns(NOW) == (0, NOW - timedelta(days=30))


def test_zero_days_stores_no_turn_and_prunes_every_old_one(store: LocalStore) -> None:
    order_and_turns(store, "call_before", NOW - timedelta(minutes=5))
    apply_policy(store, 1, TenantPolicy(transcripts_days=0))
    assert store.record_turn("call_after", "caller", "my card number is", NOW) is False
    assert store.turns("call_after") == []
    assert store.prune_turns(NOW) == (2, NOW)
    assert store.turns("call_before") == [] and store.calls() == []
    assert len(store.orders()) == 1 and len(store.pending_events()) == 1


def test_a_newer_desired_version_restores_storing(store: LocalStore) -> None:
    apply_policy(store, 1, TenantPolicy(transcripts_days=0))
    assert store.record_turn("call_a", "caller", "hello", NOW) is False
    apply_policy(store, 2, None)
    assert store.record_turn("call_b", "caller", "hello", NOW) is True
    assert [t.text for t in store.turns("call_b")] == ["hello"]
