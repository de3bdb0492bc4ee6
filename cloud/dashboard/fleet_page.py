"""The fleet dashboard page: server-rendered HTML, no scripts, no external assets.

Rendering is a pure function of the records and `now`, so a test can check the page
without a clock or a browser; the template reloads itself every few seconds.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from importlib.resources import files
from string import Template

from cloud.control.db import DeviceRecord, OrderRecord
from sync.contracts.order import OrderLine

_TEMPLATE = Template(files("cloud.dashboard").joinpath("templates/fleet.html").read_text("utf-8"))


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    s = max(0, int((now - then).total_seconds()))
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"


def _badge(good: bool, yes: str, no: str) -> str:
    return f'<span class="badge {"ok" if good else "bad"}">{yes if good else no}</span>'


def _line(li: OrderLine) -> str:
    details = ([li.size] if li.size else []) + [f"{m.kind} {m.name}" for m in li.modifiers]
    extra = f" ({', '.join(details)})" if details else ""
    return escape(f"{li.quantity}\u00d7 {li.name}{extra}")


def _device_row(d: DeviceRecord, now: datetime) -> str:
    h = d.last_health
    depth = "-" if d.outbox_depth is None else str(d.outbox_depth)
    return (
        f'<tr class="device" data-device-id="{escape(d.device_id)}">'
        f"<td>{_badge(d.online, 'online', 'offline')}</td>"
        f'<td class="mono">{escape(d.tenant_id)}</td><td class="mono">{escape(d.device_id)}</td>'
        f'<td title="{escape(d.last_seen.isoformat()) if d.last_seen else ""}">'
        f"{_ago(d.last_seen, now)}</td>"
        f'<td class="outbox">{depth}</td><td>{escape(h.printer) if h else "-"}</td>'
        f"<td>{escape(h.firmware) if h else '-'}</td></tr>"
    )


def _order_row(o: OrderRecord, now: datetime) -> str:
    items = "<br>".join(_line(li) for li in o.order.lines)
    total = f"{o.order.total_cents / 100:.2f} {o.order.currency}"
    return (
        f'<tr class="order" data-order-id="{escape(o.order_id)}">'
        f'<td class="num">#{o.number}</td><td>{items}</td><td>{escape(total)}</td>'
        f"<td>{_badge(o.ticket_printed, 'yes', 'no')}</td>"
        f'<td class="mono">{escape(o.tenant_id)}<br>{escape(o.device_id)}</td>'
        f"<td>{_ago(o.created_at, now)}</td></tr>"
    )


def render_fleet(devices: list[DeviceRecord], orders: list[OrderRecord], now: datetime,
                 refresh_s: int = 2) -> str:
    """The whole page for these devices and orders, as seen at `now`."""
    online = sum(d.online for d in devices)
    device_rows = "\n".join(_device_row(d, now) for d in devices) or (
        '<tr><td colspan="7" class="empty">no device has connected yet</td></tr>')
    order_rows = "\n".join(_order_row(o, now) for o in orders) or (
        '<tr><td colspan="6" class="empty">no orders yet</td></tr>')
    return _TEMPLATE.substitute(
        refresh_s=refresh_s,
        summary=f"{online}/{len(devices)} devices online &middot; {len(orders)} recent orders",
        generated_at=now.strftime("%Y-%m-%d %H:%M:%S"),
        device_rows=device_rows, order_rows=order_rows,
    )
