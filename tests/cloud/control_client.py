"""A real cloud app for control-plane tests: bootstrap ops token, tenants with tokens.

`control_app` serves the API over a TestClient on either backend; `governed_cloud` runs
ingest on a real broker beside it (the integration tests of desired state, commands,
reconciliation and rollouts). Helpers mint tenants, tokens and enrolled devices through
the API itself, as an operator would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cloud.config import CloudConfig
from cloud.control.app import create_app
from cloud.control.tenant_ca import make_device_csr
from sync.contracts.errors import ErrorEnvelope

OPS = "ops-bootstrap-" + "r" * 40
OPS_AUTH = {"Authorization": f"Bearer {OPS}"}
OVERLAY: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "blueprints" / "tenants" / "demo_pizza.yaml").read_text())


@dataclass
class TenantTokens:
    """A tenant and two write tokens: one writes drafts, the other approves them."""

    tenant_id: str
    author: str
    approver: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.author}"}

    @property
    def approver_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.approver}"}

    @property
    def base(self) -> str:
        return f"/api/v1/tenants/{self.tenant_id}"


def app_role(db_url: str, pg_role: str | None) -> str:
    return pg_role if db_url.startswith("postgresql") and pg_role else "voxeron_app"


def control_config(tmp_path: Path, db_url: str, role: str, **extra: Any) -> CloudConfig:
    return CloudConfig(db_path=tmp_path / "cloud.sqlite3", tenant_ca_dir=tmp_path / "ca",
                       database_url=db_url, database_app_role=role,
                       bootstrap_ops_token=SecretStr(OPS), **extra)


@contextlib.contextmanager
def control_app(cfg: CloudConfig) -> Iterator[TestClient]:
    with TestClient(create_app(cfg)) as client:
        yield client


def envelope(resp: Any, status: int, code: str | None = None) -> ErrorEnvelope:
    assert resp.status_code == status, resp.text
    env = ErrorEnvelope.model_validate(resp.json())
    if code:
        assert env.code == code, env
    return env


def new_tenant(client: TestClient, name: str, tenant_id: str | None = None,
               quotas: dict[str, int] | None = None) -> TenantTokens:
    body: dict[str, Any] = {"name": name}
    if tenant_id:
        body["tenant_id"] = tenant_id
    # Functional tests run faster than the default 10 requests/s; test_rate_limit sets its own.
    body["quotas"] = quotas or {"api_requests_per_s": 1000}
    r = client.post("/api/v1/tenants", headers=OPS_AUTH, json=body)
    assert r.status_code == 201, r.text
    tid = r.json()["tenant_id"]
    secrets = []
    for who in ("author", "approver"):
        t = client.post(f"/api/v1/tenants/{tid}/tokens", headers=OPS_AUTH,
                        json={"name": who, "scopes": ["tenant:read", "tenant:write"]})
        assert t.status_code == 201, t.text
        secrets.append(t.json()["secret"])
    return TenantTokens(tid, *secrets)


def enrol(client: TestClient, t: TenantTokens, device_id: str, stage: str | None = None) -> None:
    csr = make_device_csr(t.tenant_id, device_id).cert_pem.decode()
    r = client.post(f"{t.base}/devices", headers=OPS_AUTH,
                    json={"device_id": device_id, "csr_pem": csr})
    assert r.status_code == 201, r.text
    if stage:
        s = client.put(f"{t.base}/devices/{device_id}/stage", headers=t.auth,
                       json={"stage": stage})
        assert s.status_code == 200, s.text


def overlay(name: str) -> dict[str, Any]:
    return {**OVERLAY, "restaurant": name}


def approved_version(client: TestClient, t: TenantTokens, body: dict[str, Any]) -> int:
    """Upload, submit and approve (by the second token); the version number."""
    r = client.post(f"{t.base}/rollouts", headers=t.auth, json=body)
    assert r.status_code == 201, r.text
    version = int(r.json()["version"])
    assert client.post(f"{t.base}/rollouts/{version}/submit", headers=t.auth).status_code == 200
    a = client.post(f"{t.base}/rollouts/{version}/approve", headers=t.approver_auth)
    assert a.status_code == 200, a.text
    return version


def promote(client: TestClient, t: TenantTokens, version: int, stage: str) -> dict[str, Any]:
    r = client.post(f"{t.base}/rollouts/{version}/promote", headers=t.auth, json={"stage": stage})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@contextlib.contextmanager
def governed_cloud(tmp_path: Path, url: str, tenant_id: str, db_url: str | None = None,
                   role: str = "voxeron_app") -> Iterator[Any]:
    """Ingest on the broker at `url` plus the API (every request sent with the ops token
    unless a test passes its own), with `tenant_id` created; yields the integration
    tests' `Cloud`. `db_url` puts the control plane on another database (PostgreSQL)."""
    from tests.integration.cloud_harness import cloud_config, running_ingest
    from tests.integration.test_sync_to_cloud import Cloud

    cfg = cloud_config(tmp_path / "cloud" / "cloud.sqlite3", url).model_copy(update={
        "bootstrap_ops_token": SecretStr(OPS), "tenant_ca_dir": tmp_path / "cloud" / "ca",
        "database_url": db_url, "database_app_role": role})
    with running_ingest(cfg) as (db, ingest), \
            TestClient(create_app(cfg), headers=OPS_AUTH) as api:
        made = api.post("/api/v1/tenants", json={
            "tenant_id": tenant_id, "name": "box tenant",
            "quotas": {"api_requests_per_s": 1000}})  # tests poll faster than 10/s
        assert made.status_code == 201, made.text
        yield Cloud(db, ingest, api, cfg.db_path)
