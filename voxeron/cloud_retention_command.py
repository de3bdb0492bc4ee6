"""`voxeron cloud retention`: one data-retention pass over every tenant, now.

The worker runs the same pass every `retention_interval_s`; this is for an operator who
just lowered a tenant's retention, or a deployment that runs no worker. Prints one JSON
line per tenant with what was deleted; exit 1 if the database cannot be opened.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from cloud.config import CloudConfig


def run_retention_command(cfg: CloudConfig) -> int:
    from cloud.control.retention import run_retention
    from cloud.db import DatabaseError, open_database
    from sync.structured_log import setup_logging

    setup_logging("cloud-retention")
    password = cfg.database_app_password
    try:
        db = open_database(cfg.control_database_url, app_role=cfg.database_app_role,
                           app_password=password.get_secret_value() if password else None)
    except DatabaseError as exc:
        print(f"error: cannot open the cloud database: {exc}", file=sys.stderr)
        return 1
    try:
        for counts in run_retention(db, datetime.now(UTC)):
            print(counts.model_dump_json(), flush=True)
    finally:
        db.close()
    return 0
