"""Promised callbacks, due at their time: the one module that imports APScheduler.

The promise itself lives in the follow_ups table (callback.schedule wrote it with
`not_before`); a job only says when it is due, so a restart loses nothing: `rearm`
schedules every pending callback again from the table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from appliance.store.reservations import FollowUp
from sync.structured_log import fields

log = logging.getLogger(__name__)

OnDue = Callable[[str], None]


class CallbackScheduler:
    """Marks callbacks due at `not_before`; `due` holds their follow-up ids until handled."""

    def __init__(self, on_due: OnDue | None = None) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._on_due = on_due
        self.due: list[str] = []

    def start(self) -> None:
        """Start the scheduler on the running asyncio loop."""
        if not self._scheduler.running:
            self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def schedule(self, follow_up_id: str, at: datetime) -> None:
        """Mark `follow_up_id` due at `at` (replacing an earlier job for it)."""
        when = at if at.tzinfo else at.replace(tzinfo=UTC)
        self._scheduler.add_job(self._fire, "date", run_date=when, args=[follow_up_id],
                                id=follow_up_id, replace_existing=True, misfire_grace_time=None)

    def rearm(self, pending: Iterable[FollowUp]) -> int:
        """Schedule every pending callback from the table (after a restart); how many."""
        count = 0
        for fu in pending:
            if fu.kind == "callback" and fu.not_before is not None:
                self.schedule(fu.follow_up_id, fu.not_before)
                count += 1
        return count

    def _fire(self, follow_up_id: str) -> None:
        self.due.append(follow_up_id)
        log.warning("callback due", extra=fields(follow_up_id=follow_up_id))
        if self._on_due is not None:
            self._on_due(follow_up_id)
