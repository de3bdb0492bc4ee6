"""The calls-per-minute window (a rolling 60 s of admitted calls, time passed in) and the
quota in force it is checked against."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.desired_blueprint import DesiredComposer
from appliance.store import LocalStore, desired_state
from appliance.voice.call_rate import CallRateWindow
from appliance.voice.desired_in_force import DesiredInForce
from sync.contracts.messages import DesiredState, TenantPolicy

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def test_no_limit_admits_every_call() -> None:
    window = CallRateWindow()
    for second in range(100):
        assert window.allows(float(second) / 10, None)
        window.admit(float(second) / 10)
    assert window.count(9.9) == 100


def test_zero_admits_none() -> None:
    assert not CallRateWindow().allows(0.0, 0)


def test_limit_counts_the_calls_of_the_last_rolling_minute() -> None:
    window = CallRateWindow()
    window.admit(0.0)
    window.admit(30.0)
    assert not window.allows(59.9, 2)
    assert window.allows(60.0, 2)  # the call at 0 s has left the window
    window.admit(60.0)
    assert not window.allows(89.9, 2)
    assert window.allows(90.0, 2)
    assert window.count(90.0) == 1


def test_calls_answered_before_a_limit_count_against_it() -> None:
    window = CallRateWindow()
    window.admit(10.0)  # unlimited at the time
    assert not window.allows(20.0, 1)
    assert window.allows(20.0, 2)


def test_a_refused_call_is_not_counted() -> None:
    window = CallRateWindow()
    window.admit(0.0)
    for t in (1.0, 2.0, 3.0):
        assert not window.allows(t, 1)
    assert window.count(3.0) == 1
    assert window.allows(60.0, 1)


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_s"):
        CallRateWindow(0.0)


def test_the_quota_in_force_is_read_per_call_and_kept_when_unreadable(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    quota = DesiredInForce(DesiredComposer())
    assert quota.calls_per_min(store) is None  # no desired state: unlimited
    for version, policy in ((1, TenantPolicy(calls_per_min=3)), (2, TenantPolicy()),
                            (3, TenantPolicy(calls_per_min=0))):
        desired = DesiredState(tenant_id="ten_a", device_id="dev_a", version=version,
                               issued_at=NOW, policy=policy)
        with store.transaction() as conn:
            desired_state.apply(conn, desired, None, NOW)
        assert quota.calls_per_min(store) == policy.calls_per_min
    store.close()
    assert quota.calls_per_min(store) == 0  # a closed store: the last quota, not an exception
