"""`voxeron cloud run`: the cloud API, fleet dashboard and MQTT ingest in one process."""

from __future__ import annotations

import logging
import signal

import uvicorn

from cloud.config import CloudConfig
from cloud.control.app import create_app
from cloud.control.control_state import ControlPlane
from cloud.control.db import CloudDb
from cloud.control.ingest import Ingest, ingest_link
from cloud.control.usage import on_health
from cloud.integration.order_inbox import record_order_events
from sync.structured_log import fields, setup_logging

log = logging.getLogger(__name__)


def run_cloud(cfg: CloudConfig) -> None:
    """Serve HTTP until SIGTERM/SIGINT (uvicorn handles both), ingesting meanwhile."""
    setup_logging("cloud")
    log.info("cloud starting", extra=fields(
        db_path=str(cfg.db_path), http=f"{cfg.host}:{cfg.port}", mqtt_url=cfg.mqtt_url))
    db = CloudDb.for_config(cfg)
    # The integration plane's order inbox is fed from ingest, inside the ack path, so an
    # order event acked to the box has its POS/webhook actions recorded (`cloud worker`).
    control = ControlPlane.open(cfg)
    ingest = Ingest(db, ingest_link(cfg), share_group=cfg.ingest_share_group,
                    on_events=lambda events, now: record_order_events(control.db, events, now),
                    on_health=lambda health, now: on_health(control.db, db, health, now),
                    health_history_days=cfg.health_history_days)
    ingest.start()
    # uvicorn re-raises the stop signal after its shutdown; a no-op handler absorbs it so
    # ingest still stops cleanly and the process exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_config=None,
                    access_log=False)
    finally:
        ingest.stop()
        control.close()
        db.close()
        log.info("cloud stopped")
