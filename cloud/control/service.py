"""`voxeron cloud run`: the cloud API, fleet dashboard and MQTT ingest in one process."""

from __future__ import annotations

import logging
import signal

import uvicorn

from cloud.config import CloudConfig
from cloud.control.app import create_app
from cloud.control.db import CloudDb
from cloud.control.ingest import Ingest, ingest_link
from sync.structured_log import fields, setup_logging

log = logging.getLogger(__name__)


def run_cloud(cfg: CloudConfig) -> None:
    """Serve HTTP until SIGTERM/SIGINT (uvicorn handles both), ingesting meanwhile."""
    setup_logging("cloud")
    log.info("cloud starting", extra=fields(
        db_path=str(cfg.db_path), http=f"{cfg.host}:{cfg.port}", mqtt_url=cfg.mqtt_url))
    db = CloudDb(cfg.db_path)
    ingest = Ingest(db, ingest_link(cfg))
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
        db.close()
        log.info("cloud stopped")
