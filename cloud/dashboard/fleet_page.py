"""What the fleet page shows, as plain rows, and the Jinja environment that renders it.

Assembling rows is a pure function of the records and `now` (tests need no clock or
browser); autoescaping is on for every template, so a device or menu name never becomes
markup. Alerts are the box's own (Health.alerts) plus the ones the cloud can see:
offline, printer not ready, dead-lettered tickets, an open POS breaker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Literal

from jinja2 import Environment, PackageLoader, select_autoescape

from cloud.control.db import DeviceRecord, OrderRecord
from sync.contracts.order import OrderLine

SortKey = Literal["health", "tenant", "device", "last_seen", "outbox", "firmware", "orders"]
StateFilter = Literal["all", "unhealthy", "offline", "online"]
SORT_KEYS: tuple[SortKey, ...] = ("health", "tenant", "device", "last_seen", "outbox",
                                  "firmware", "orders")


def ago(then: datetime | None, now: datetime) -> str:
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


def order_line(li: OrderLine) -> str:
    details = ([li.size] if li.size else []) + [f"{m.kind} {m.name}" for m in li.modifiers]
    extra = f" ({', '.join(details)})" if details else ""
    return f"{li.quantity}\u00d7 {li.name}{extra}"


def environment() -> Environment:
    env = Environment(loader=PackageLoader("cloud.dashboard", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["order_line"] = order_line
    return env


@dataclass(frozen=True)
class FleetRow:
    """One device as the fleet table shows it."""

    tenant_id: str
    device_id: str
    online: bool
    last_seen: datetime | None
    last_seen_text: str
    firmware: str
    outbox_depth: int | None
    printer: str
    calls_today: int
    orders_today: int
    alerts: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.alerts


def device_alerts(d: DeviceRecord, open_breakers: Iterable[str] = ()) -> tuple[str, ...]:
    """The device's open alerts, box-reported and cloud-derived, without repeats."""
    h = d.last_health
    found: list[str] = [] if d.online else ["device_offline"]
    if h is not None:
        found += h.alerts
        if h.printer != "ok":
            found.append("printer_not_ready")
        if h.print_dead_lettered:
            found.append("ticket_dead_lettered")
    found += [f"pos_breaker_open:{i}" for i in open_breakers]
    return tuple(dict.fromkeys(found))


def fleet_rows(devices: list[DeviceRecord], orders_today: list[OrderRecord], now: datetime,
               breakers_by_tenant: dict[str, list[str]] | None = None) -> list[FleetRow]:
    """Rows in device order; `orders_today` are every tenant's orders since midnight UTC."""
    orders = Counter((o.tenant_id, o.device_id) for o in orders_today)
    calls = Counter((o.tenant_id, o.device_id)
                    for o in {(o.tenant_id, o.device_id, o.order.call_id): o
                              for o in orders_today}.values())
    breakers = breakers_by_tenant or {}
    return [FleetRow(
        tenant_id=d.tenant_id, device_id=d.device_id, online=d.online, last_seen=d.last_seen,
        last_seen_text=ago(d.last_seen, now),
        firmware=d.last_health.firmware if d.last_health else "-",
        outbox_depth=d.outbox_depth, printer=d.last_health.printer if d.last_health else "-",
        calls_today=calls[(d.tenant_id, d.device_id)],
        orders_today=orders[(d.tenant_id, d.device_id)],
        alerts=device_alerts(d, breakers.get(d.tenant_id, ())),
    ) for d in devices]


def select_rows(rows: list[FleetRow], *, sort: SortKey = "health", desc: bool = False,
                state: StateFilter = "all", q: str = "") -> list[FleetRow]:
    """Filter by state and a substring of tenant/device id, then sort; unhealthy first
    (most alerts first) is the default and the tie-breaker of every other sort."""
    needle = q.strip().lower()
    kept = [r for r in rows
            if (not needle or needle in r.tenant_id.lower() or needle in r.device_id.lower())
            and (state == "all" or (state == "unhealthy" and not r.healthy)
                 or (state == "offline" and not r.online) or (state == "online" and r.online))]
    kept.sort(key=lambda r: (r.healthy, -len(r.alerts), r.tenant_id, r.device_id))
    if sort == "health":
        return kept[::-1] if desc else kept
    never = datetime.min.replace(tzinfo=_tz(rows))
    keys = {"tenant": lambda r: r.tenant_id, "device": lambda r: r.device_id,
            "last_seen": lambda r: r.last_seen or never,
            "outbox": lambda r: -1 if r.outbox_depth is None else r.outbox_depth,
            "firmware": lambda r: r.firmware, "orders": lambda r: r.orders_today}
    return sorted(kept, key=keys[sort], reverse=desc)  # type: ignore[no-any-return]


def _tz(rows: list[FleetRow]) -> tzinfo | None:
    """The rows' time zone, so 'never seen' sorts against aware datetimes."""
    return next((r.last_seen.tzinfo for r in rows if r.last_seen is not None), None)


@dataclass(frozen=True)
class FleetSummary:
    devices: int
    online: int
    unhealthy: int
    alerts: Counter[str] = field(default_factory=Counter)


def summarize(rows: list[FleetRow]) -> FleetSummary:
    return FleetSummary(devices=len(rows), online=sum(r.online for r in rows),
                        unhealthy=sum(not r.healthy for r in rows),
                        alerts=Counter(a.split(":")[0] for r in rows for a in r.alerts))


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)

