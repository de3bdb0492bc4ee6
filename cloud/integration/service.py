"""`voxeron cloud worker`: one integration worker replica, configured from the environment.

Any number of replicas may run against one PostgreSQL database; they share the work
through row locks (`FOR UPDATE SKIP LOCKED`) and keep no state of their own. On SQLite
(single node) run one. SIGTERM/SIGINT stop claiming, finish what is in flight, and exit.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.config import CloudConfig
from cloud.db import open_database
from cloud.integration.breaker import BreakerPolicy
from cloud.integration.claims import ClaimPolicy
from cloud.integration.lifecycle import RetryPolicy
from cloud.integration.secret_box import SecretBox
from cloud.integration.worker import Worker
from sync.structured_log import fields, setup_logging

log = logging.getLogger(__name__)


class WorkerConfig(BaseSettings):
    """The worker's knobs (VOXERON_CLOUD_WORKER_*); the database comes from CloudConfig."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_CLOUD_WORKER_")

    worker_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
                           pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    parallel: int = Field(default=8, ge=1, le=256, description="deliveries at once")
    lane_cap: int = Field(default=2, ge=1, le=64,
                          description="actions in flight per tenant per integration")
    lease_s: float = Field(default=120.0, gt=0, description="claim lease before re-scheduling")
    poll_s: float = Field(default=0.5, gt=0, le=60, description="idle wait between claims")
    retry_base_s: float = Field(default=2.0, gt=0)
    retry_cap_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=12, ge=1, le=1000)
    patience_s: float = Field(default=3 * 3600.0, ge=0,
                              description="a retryable failure dead-letters only after "
                                          "max_attempts AND this age")
    breaker_failures: int = Field(default=5, ge=1, description="consecutive failures to open")
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    retention_interval_s: float = Field(
        default=3600.0, ge=0, description="seconds between data-retention passes (0 = none; "
                                          "`voxeron cloud retention` runs one by hand)")

    def claim_policy(self) -> ClaimPolicy:
        return ClaimPolicy(
            lane_cap=self.lane_cap, lease_s=self.lease_s,
            retry=RetryPolicy(self.retry_base_s, self.retry_cap_s, self.max_attempts,
                              self.patience_s),
            breaker=BreakerPolicy(self.breaker_failures, self.breaker_cooldown_s))


def run_worker(cloud: CloudConfig, cfg: WorkerConfig) -> None:
    """Run one worker until SIGTERM or SIGINT."""
    setup_logging("cloud-worker")
    password = cloud.database_app_password
    db = open_database(cloud.control_database_url, app_role=cloud.database_app_role,
                       app_password=password.get_secret_value() if password else None,
                       pool_size=cfg.parallel + 2)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    secrets = SecretBox.from_config(cloud)
    worker = Worker(db, cfg.worker_id, cfg.claim_policy(), parallel=cfg.parallel,
                    secrets=secrets, retention_every_s=cfg.retention_interval_s)
    log.info("integration worker started", extra=fields(worker_id=cfg.worker_id,
                                                         backend=db.backend,
                                                         secret_key_ids=secrets.key_ids))
    print(f"worker {cfg.worker_id} ready", flush=True)
    try:
        worker.run(stop, cfg.poll_s)
    finally:
        worker.close()
        db.close()
        log.info("integration worker stopped", extra=fields(worker_id=cfg.worker_id))
