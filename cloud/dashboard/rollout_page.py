"""The operator's rollout panel: per version its state, where it is live and, per device,
whether the device reported it applied. Server-rendered, a pure function of the data."""

from __future__ import annotations

from datetime import datetime
from html import escape
from importlib.resources import files
from string import Template

from cloud.control.device_desired import RolloutStatus
from cloud.control.rollout import RolloutVersion, Stage

_TEMPLATE = Template(
    files("cloud.dashboard").joinpath("templates/rollouts.html").read_text("utf-8"))


def _devices(status: RolloutStatus | None) -> str:
    if status is None or not status.devices:
        return '<span class="empty">not published to any device</span>'
    rows = "<br>".join(
        f'<span class="mono">{escape(d.device_id)}</span> ({escape(d.stage)}, '
        f'desired v{d.desired_version}) <span class="badge {d.state}">{d.state}</span>'
        + (f" {escape(d.error)}" if d.error else "")
        for d in status.devices)
    return f"{status.applied}/{len(status.devices)} applied<br>{rows}"


def _row(v: RolloutVersion, status: RolloutStatus | None) -> str:
    who = escape(v.author) + (f" / {escape(v.approved_by)}" if v.approved_by else "")
    origin = f" (rollback of {v.rolled_back_from})" if v.rolled_back_from else ""
    return (f'<tr class="version" data-version="{v.version}"><td>{v.version}{origin}<br>'
            f'<span class="empty">{escape(v.note)}</span></td><td>{v.state}</td>'
            f'<td class="mono">{who}</td><td>{", ".join(v.promoted_to) or "-"}</td>'
            f"<td>{_devices(status)}</td></tr>")


def render_rollouts(tenant_id: str, versions: list[RolloutVersion],
                    statuses: dict[int, RolloutStatus], live: dict[Stage, int],
                    now: datetime, refresh_s: int = 5) -> str:
    """The page for one tenant's versions (newest first) as seen at `now`."""
    rows = "\n".join(_row(v, statuses.get(v.version)) for v in versions) or (
        '<tr><td colspan="5" class="empty">no versions uploaded yet</td></tr>')
    live_text = ", ".join(f"{s}: v{n}" for s, n in sorted(live.items())) or "nothing live"
    return _TEMPLATE.substitute(refresh_s=refresh_s, tenant_id=escape(tenant_id),
                                live=escape(live_text),
                                generated_at=now.strftime("%Y-%m-%d %H:%M:%S"),
                                version_rows=rows)
