"""`voxeron cloud token create --ops` bootstraps a fresh install: a real subprocess, both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloud.config import CloudConfig
from cloud.control.app import create_app

VOXERON = str(Path(sys.executable).with_name("voxeron"))


def test_cli_ops_token_works_against_the_api(db_url: str, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    env = {**os.environ, "VOXERON_CLOUD_DATABASE_URL": db_url,
           "VOXERON_CLOUD_DATABASE_APP_ROLE": role,
           "VOXERON_CLOUD_DB_PATH": str(tmp_path / "cloud.sqlite3")}
    done = subprocess.run([VOXERON, "cloud", "token", "create", "--ops", "--name", "first"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("vxt_") and "scopes=ops:*" in done.stderr
    bad = subprocess.run([VOXERON, "cloud", "token", "create", "--tenant", "nobody"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and "tenant.not_found" in bad.stderr and bad.stdout == ""
    cfg = CloudConfig(db_path=tmp_path / "cloud.sqlite3", tenant_ca_dir=tmp_path / "ca",
                      database_url=db_url, database_app_role=role)
    with TestClient(create_app(cfg)) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        r = client.post("/api/v1/tenants", headers=auth, json={"name": "First"})
        assert r.status_code == 201, r.text
        tenant_id = r.json()["tenant_id"]
        assert client.get(f"/api/v1/tenants/{tenant_id}", headers=auth).status_code == 200
