"""The cloud's public HTTP contract: the OpenAPI document of the app, built offline.

`voxeron contracts check` compares it with contracts/public-api/<version>.openapi.json;
the version is the app's own (`FastAPI(version=...)` in `app.py`). The app is built over
a throwaway SQLite directory, so no running service or database is needed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cloud.config import CloudConfig
from cloud.control.app import create_app


def public_openapi() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict) of the cloud API as this code serves it."""
    with tempfile.TemporaryDirectory(prefix="voxeron-openapi-") as tmp:
        root = Path(tmp)
        cfg = CloudConfig(db_path=root / "cloud.sqlite3", tenant_ca_dir=root / "ca",
                          database_url=f"sqlite:///{root / 'control.sqlite3'}")
        app = create_app(cfg)
        doc = app.openapi()
        app.state.control.close()
        app.state.db.close()
    return doc
