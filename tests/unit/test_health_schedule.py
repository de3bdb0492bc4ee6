"""When voxeron-sync reports health: on connect, every interval, and soon after a drain."""

from __future__ import annotations

from appliance.sync_link import HealthSchedule


def test_first_report_is_immediate_then_every_interval() -> None:
    schedule = HealthSchedule(interval_s=30, min_gap_s=1)
    assert schedule.due(outbox_depth=0, now=0.0)
    schedule.sent(0, 0.0)
    assert not schedule.due(0, 29.9)
    assert schedule.due(0, 30.0)


def test_depth_change_reports_early_but_not_more_than_once_a_gap() -> None:
    schedule = HealthSchedule(interval_s=30, min_gap_s=1)
    schedule.sent(5, 0.0)
    assert not schedule.due(4, 0.5)
    assert schedule.due(4, 1.0)
    schedule.sent(4, 1.0)
    assert not schedule.due(4, 5.0)


def test_reset_reports_at_once_after_a_reconnect() -> None:
    schedule = HealthSchedule(interval_s=30)
    schedule.sent(0, 0.0)
    schedule.reset()
    assert schedule.due(0, 0.1)
