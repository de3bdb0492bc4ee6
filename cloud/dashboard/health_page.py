"""The device page's "last 24 h" section: sparklines and state changes from health history.

A pure function of the stored reports and `now`: the sparklines are SVG coordinates
computed here and inlined by the template (no scripts, no chart library). Each pixel
column keeps the worst value that fell into it (deepest outbox, least free disk), so a
short spike is not averaged away when a day of 30-second reports meets 240 pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud.control.health_history import HealthPoint

WINDOW = timedelta(hours=24)
WIDTH, HEIGHT, PAD = 240, 40, 3
MAX_CHANGES = 50


@dataclass(frozen=True)
class Sparkline:
    """One series over the window: polyline points, the last point, and its value range."""

    label: str
    points: str
    last_x: float
    last_y: float
    low: str
    high: str
    last: str


@dataclass(frozen=True)
class HealthChange:
    """A report where the printer state or the set of alerts differs from the one before."""

    at: datetime
    printer: str
    alerts: tuple[str, ...]


@dataclass(frozen=True)
class HealthDay:
    """What the "last 24 h" section shows; `reports` 0 means the section says so."""

    reports: int
    outbox: Sparkline | None
    disk: Sparkline | None
    changes: tuple[HealthChange, ...]
    width: int = WIDTH
    height: int = HEIGHT


def _gb(v: float) -> str:
    return f"{v / 1e9:.1f} GB"


def _sparkline(label: str, samples: Sequence[tuple[datetime, float]], now: datetime,
               worst: Callable[[float, float], float], floor: float | None,
               text: Callable[[float], str]) -> Sparkline | None:
    """`samples` oldest first; None without any. `floor` pins the bottom of the scale."""
    if not samples:
        return None
    start = now - WINDOW
    columns: dict[int, float] = {}
    for at, value in samples:
        frac = (at - start) / WINDOW
        x = PAD + round(min(max(frac, 0.0), 1.0) * (WIDTH - 2 * PAD))
        columns[x] = worst(columns[x], value) if x in columns else value
    values = [v for _, v in samples]
    low = min(values) if floor is None else min(floor, *values)
    high = max(values)
    span = high - low

    def y(v: float) -> float:
        if span == 0:
            return HEIGHT / 2
        return round(HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD), 1)

    coords = [(float(x), y(v)) for x, v in sorted(columns.items())]
    return Sparkline(label=label, points=" ".join(f"{cx:g},{cy:g}" for cx, cy in coords),
                     last_x=coords[-1][0], last_y=coords[-1][1], low=text(low),
                     high=text(high), last=text(values[-1]))


def _changes(chronological: Sequence[HealthPoint]) -> tuple[HealthChange, ...]:
    """The first report and every one whose printer or alerts differ; newest first."""
    found: list[HealthChange] = []
    before: tuple[str, tuple[str, ...]] | None = None
    for p in chronological:
        state = (p.printer, tuple(sorted(p.alerts)))
        if state != before:
            found.append(HealthChange(at=p.at, printer=p.printer, alerts=state[1]))
            before = state
    return tuple(reversed(found[-MAX_CHANGES:]))


def health_day(points: Sequence[HealthPoint], now: datetime) -> HealthDay:
    """The section for reports of the last 24 h (any order; older ones are ignored)."""
    recent = sorted((p for p in points if p.at >= now - WINDOW), key=lambda p: p.at)
    outbox = _sparkline("Outbox depth", [(p.at, float(p.outbox_depth)) for p in recent], now,
                        max, 0.0, lambda v: str(int(v)))
    disk = _sparkline("Disk free", [(p.at, float(p.disk_free_bytes)) for p in recent
                                    if p.disk_free_bytes is not None], now, min, None, _gb)
    return HealthDay(reports=len(recent), outbox=outbox, disk=disk, changes=_changes(recent))
