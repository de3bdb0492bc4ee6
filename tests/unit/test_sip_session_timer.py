"""Session timers (RFC 4028) negotiated from headers, and the expiry clock driven by `now`."""

from __future__ import annotations

import pytest

from appliance.voice.session_timer import SessionTimer, TimerTerms, TooSmall, negotiate
from appliance.voice.sip_message import Headers


def h(*items: tuple[str, str]) -> Headers:
    return Headers(items)


def test_negotiation() -> None:
    assert negotiate(h()) is None
    assert negotiate(h(("Supported", "100rel, timer"))) == TimerTerms(1800, "uac")
    assert negotiate(h(("k", "timer"), ("x", "600"))) == TimerTerms(600, "uac")  # compact forms
    assert negotiate(h(("Supported", "timer"), ("Session-Expires", "600;refresher=uas"))) == TimerTerms(600, "uas")
    assert negotiate(h(("Session-Expires", "600"))) == TimerTerms(600, "uas")  # caller cannot refresh
    assert negotiate(h(("Supported", "timer"), ("Session-Expires", "100"), ("Min-SE", "300"))) == TimerTerms(300, "uac")
    with pytest.raises(TooSmall) as small:
        negotiate(h(("Supported", "timer"), ("Session-Expires", "60")))
    assert small.value.min_se == 90
    for bad in ("soon", "600;refresher=me", ""):
        with pytest.raises(ValueError):
            negotiate(h(("Session-Expires", bad)))


def test_uac_refresher_must_refresh_or_the_session_expires() -> None:
    timer = SessionTimer(TimerTerms(90, "uac"), now=0.0)
    assert timer.due == 60.0  # 90 - min(32, 30)
    assert timer.poll(59.9) == "wait" and timer.poll(60.0) == "expire"
    timer.refresh(TimerTerms(1800, "uac"), now=50.0)
    assert timer.due == 50.0 + 1800 - 32 and timer.poll(1000.0) == "wait"


def test_uas_refresher_refreshes_at_half_the_interval() -> None:
    timer = SessionTimer(TimerTerms(600, "uas"), now=10.0)
    assert timer.poll(309.0) == "wait" and timer.poll(310.0) == "refresh"
