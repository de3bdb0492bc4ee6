"""The integration worker: claims due actions lane by lane and delivers them in parallel.

Each tick walks the lanes with due work, starting one further along each time (round
robin), and claims at most `lane_cap` per lane, so a tenant whose POS hangs occupies at
most `lane_cap` delivery threads while every other tenant's actions keep flowing. The
clock and the jitter source are injected: tests drive retries and breaker cool-downs by
moving the clock instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

import httpx

from cloud.control.retention import RetentionSchedule, run_retention
from cloud.db import Database
from cloud.integration.action_store import read_config
from cloud.integration.claims import Claim, ClaimPolicy, abandon, claim_lane, due_lanes, finish
from cloud.integration.delivery import Outcome
from cloud.integration.lifecycle import Rng, default_rng
from cloud.integration.pos_cancel import deliver_square
from cloud.integration.pos_square import SquareConfig
from cloud.integration.secret_box import SecretBox, SecretUndecryptable
from cloud.integration.webhooks import WebhookSender
from sync.contracts.actions import Action
from sync.contracts.errors import ErrorEnvelope
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Worker:
    """One worker replica; any number may run against the same database."""

    def __init__(self, db: Database, worker_id: str, policy: ClaimPolicy | None = None, *,
                 parallel: int = 8, clock: Callable[[], datetime] = _utcnow,
                 rng: Rng | None = None, client: httpx.Client | None = None,
                 secrets: SecretBox, retention_every_s: float = 0.0) -> None:
        self.db = db
        self.secrets = secrets  # opens the sealed POS tokens and webhook secrets
        self.worker_id = worker_id
        self.policy = policy or ClaimPolicy()
        self.parallel = parallel
        self.clock = clock
        self.rng = rng or default_rng()
        self._client = client or httpx.Client()
        self._pool = ThreadPoolExecutor(max_workers=parallel,
                                        thread_name_prefix=f"deliver-{worker_id}")
        self._inflight: set[Future[Action | None]] = set()
        self._lock = threading.Lock()
        self._turn = 0
        # The data-retention pass rides on the claim loop (0 = never): every replica runs
        # it, which is harmless (a pass deletes only what is past retention, row-locked).
        self._retention = RetentionSchedule(retention_every_s)

    def tick(self) -> int:
        """Claim what is due and free capacity allows; the number of actions claimed."""
        now = self.clock()
        with self._lock:
            self._inflight = {f for f in self._inflight if not f.done()}
            free = self.parallel - len(self._inflight)
        if free <= 0:
            return 0
        lanes = due_lanes(self.db, now)
        if not lanes:
            return 0
        start = self._turn % len(lanes)
        self._turn += 1
        claimed = 0
        for lane in lanes[start:] + lanes[:start]:
            if free <= 0:
                break
            for claim in claim_lane(self.db, lane, now, min(free, self.policy.lane_cap),
                                    self.worker_id, self.policy, self.rng):
                future = self._pool.submit(self.deliver, claim)
                with self._lock:
                    self._inflight.add(future)
                free -= 1
                claimed += 1
        return claimed

    def deliver(self, claim: Claim) -> Action | None:
        """Send one claimed action to its peer and record the outcome."""
        action = claim.action
        with log_context(tenant_id=action.tenant_id, order_id=action.order_id,
                         action_id=action.action_id):
            try:
                return self._deliver(claim)
            except Exception:  # the lease brings it back; never kill the delivery thread
                log.exception("delivery failed unexpectedly", extra=fields(
                    integration_id=action.integration_id))
                return None

    def _deliver(self, claim: Claim) -> Action | None:
        action = claim.action
        try:
            with self.db.tenant(action.tenant_id) as tx:
                found = read_config(tx, action.integration_id, self.secrets)
        except SecretUndecryptable as exc:  # kept and retried: restoring the key delivers it
            log.error("integration secret undecryptable", extra=fields(
                alert="secret_undecryptable", tenant_id=action.tenant_id,
                integration_id=action.integration_id))
            return abandon(self.db, claim, self.clock(), self.worker_id, self.policy, self.rng,
                           ErrorEnvelope(code="integration.secret_undecryptable",
                                         category="integration", retryable=True,
                                         message=f"integration {action.integration_id}: {exc}"))
        if found is None or not found[1]:
            return abandon(self.db, claim, self.clock(), self.worker_id, self.policy, self.rng,
                           ErrorEnvelope(code="integration.not_configured",
                                         category="integration", retryable=True,
                                         message=f"integration {action.integration_id} is "
                                                 "missing or disabled"))
        config = found[0]
        outcome: Outcome
        if isinstance(config, SquareConfig):
            outcome = deliver_square(self.db, config, self._client, action)
        else:
            outcome = WebhookSender(config, self._client).deliver(action, self.clock())
        after = finish(self.db, claim, outcome, self.clock(), self.worker_id, self.policy,
                       self.rng)
        log.info("action attempt", extra=fields(
            integration_id=action.integration_id, attempt=action.attempts,
            verdict=outcome.verdict, state=after.state if after else "lost_claim",
            error=outcome.error.code if outcome.error else None))
        return after

    def drain(self, timeout: float | None = 60.0) -> None:
        """Wait for every delivery this worker started (tests, shutdown)."""
        with self._lock:
            pending = set(self._inflight)
        wait(pending, timeout=timeout)

    def run_until_idle(self, max_ticks: int = 1000) -> int:
        """Tick and drain until a tick claims nothing (tests with a frozen clock)."""
        total = 0
        for _ in range(max_ticks):
            claimed = self.tick()
            self.drain()
            if claimed == 0:
                return total
            total += claimed
        return total

    def run(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Loop until `stop` is set, idling `poll_s` when nothing was due."""
        while not stop.is_set():
            try:
                claimed = self.tick()
            except Exception:  # a database hiccup: log, back off, keep the worker alive
                log.exception("claiming failed")
                claimed = 0
            self.maybe_run_retention()
            if claimed == 0:
                stop.wait(poll_s)
        self.drain()

    def maybe_run_retention(self) -> int:
        """Run the retention pass if it is due; the rows it deleted (0 if not due)."""
        now = self.clock()
        if not self._retention.due(now):
            return 0
        try:
            return sum(c.total for c in run_retention(self.db, now))
        except Exception:  # the database is down: try again at the next interval
            log.exception("retention pass failed")
            return 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
