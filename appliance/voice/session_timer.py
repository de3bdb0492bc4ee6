"""SIP session timers (RFC 4028) for calls we answer: negotiation and the expiry clock.

Pure: `negotiate` reads an INVITE's headers, `SessionTimer` takes `now`; the agent only
sends what they decide. Policy: the caller refreshes (refresher=uac) whenever it supports
the extension. If it asks us to refresh, we do (with UPDATE when it allows it, else a
re-INVITE of the same session). A caller that does not support timers gets none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from appliance.voice.sip_message import Headers

MIN_SE = 90  # RFC 4028 4: the smallest Min-SE anyone may use
DEFAULT_SE = 1800  # RFC 4028 4: recommended Session-Expires
Refresher = Literal["uac", "uas"]
_SE = re.compile(r"^\s*([0-9]{1,10})\s*(?:;(.*))?$")


class TooSmall(ValueError):
    """Session-Expires below our Min-SE: answer 422 with `min_se`."""

    def __init__(self, min_se: int) -> None:
        super().__init__(f"Session-Expires below Min-SE {min_se}")
        self.min_se = min_se


@dataclass(frozen=True)
class TimerTerms:
    """What both sides agreed: the interval and who refreshes."""

    interval_s: int
    refresher: Refresher

    def header(self) -> str:
        return f"{self.interval_s};refresher={self.refresher}"


def _supports_timer(headers: Headers) -> bool:
    return any(v.strip().lower() == "timer" for v in
               [*headers.values("Supported"), *headers.values("Require")])


def parse_session_expires(value: str) -> tuple[int, Refresher | None]:
    """`1800;refresher=uac` -> (1800, "uac"); raises ValueError for anything malformed."""
    m = _SE.match(value)
    if not m:
        raise ValueError(f"bad Session-Expires {value[:40]!r}")
    refresher: Refresher | None = None
    for param in (m.group(2) or "").split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "refresher":
            role = arg.strip().lower()
            if role not in ("uac", "uas"):
                raise ValueError(f"bad refresher {arg[:10]!r}")
            refresher = role  # type: ignore[assignment]
    return int(m.group(1)), refresher


def negotiate(headers: Headers, min_se: int = MIN_SE) -> TimerTerms | None:
    """The terms for an initial INVITE or a refresh, None if the caller wants no timer.

    Raises TooSmall (-> 422) when the asked interval is below `min_se`, and ValueError
    (-> 400) for a malformed Session-Expires or Min-SE.
    """
    raw = headers.get("Session-Expires")
    supported = _supports_timer(headers)
    if raw is None:
        if not supported:
            return None
        return TimerTerms(max(DEFAULT_SE, min_se), "uac")
    interval, refresher = parse_session_expires(raw)
    their_min = headers.get("Min-SE")
    floor = min_se
    if their_min is not None:
        if not their_min.strip().isdigit():
            raise ValueError(f"bad Min-SE {their_min[:20]!r}")
        floor = max(floor, int(their_min.strip()))
    if interval < min_se:
        raise TooSmall(min_se)
    interval = max(interval, floor)
    if not supported:  # a proxy asked for it; the caller cannot refresh (RFC 4028 9)
        return TimerTerms(interval, "uas")
    return TimerTerms(interval, refresher or "uac")


class SessionTimer:
    """The expiry clock of one call: refreshed by the refresher, else the session ends.

    The side that does not refresh sends BYE at expiry minus min(32 s, interval/3) (RFC
    4028 10); when we refresh, we do it at half the interval.
    """

    def __init__(self, terms: TimerTerms, now: float) -> None:
        self.terms = terms
        self.refreshed_at = now

    def refresh(self, terms: TimerTerms, now: float) -> None:
        """A refresh (re-INVITE or UPDATE) went through: restart the clock."""
        self.terms, self.refreshed_at = terms, now

    @property
    def due(self) -> float:
        """When `poll` has something to do next."""
        interval = self.terms.interval_s
        if self.terms.refresher == "uas":
            return self.refreshed_at + interval / 2
        return self.refreshed_at + interval - min(32.0, interval / 3)

    def poll(self, now: float) -> Literal["wait", "refresh", "expire"]:
        """wait, refresh (we are the refresher) or expire (the peer did not refresh in time)."""
        if now < self.due:
            return "wait"
        return "refresh" if self.terms.refresher == "uas" else "expire"
