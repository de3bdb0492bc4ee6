"""Data residency: a deployment serves a configured set of regions and refuses, with the
standard error envelope, to create a tenant whose data would have to live elsewhere; on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cloud.config import ALL_REGIONS, CloudConfig
from tests.cloud.control_client import OPS_AUTH, app_role, control_app, control_config, envelope


@pytest.fixture
def eu_client(db_url: str, tmp_path: Path, request: pytest.FixtureRequest,
              ) -> Iterator[TestClient]:
    """The control API of a deployment that serves the EU and the UK only."""
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else None)
    cfg = control_config(tmp_path, db_url, app_role(db_url, role), regions=("eu", "uk"))
    with control_app(cfg) as c:
        yield c


def test_a_tenant_of_a_region_not_served_is_refused_and_not_stored(
        eu_client: TestClient) -> None:
    r = eu_client.post("/api/v1/tenants", headers=OPS_AUTH,
                       json={"tenant_id": "ten_us_diner", "name": "US diner", "region": "us"})
    env = envelope(r, 422, "tenant.region_not_served")
    assert env.category == "validation" and "'us'" in env.message and "eu, uk" in env.message
    envelope(eu_client.get("/api/v1/tenants/ten_us_diner", headers=OPS_AUTH), 404,
             "tenant.not_found")
    ok = eu_client.post("/api/v1/tenants", headers=OPS_AUTH,
                        json={"tenant_id": "ten_uk_diner", "name": "UK diner", "region": "uk"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["region"] == "uk"


def test_an_unknown_region_is_a_request_error(eu_client: TestClient) -> None:
    r = eu_client.post("/api/v1/tenants", headers=OPS_AUTH,
                       json={"name": "Moon base", "region": "moon"})
    envelope(r, 422, "request.invalid")


def test_regions_come_from_a_comma_list_and_must_be_known(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert CloudConfig().regions == ALL_REGIONS == ("eu", "uk", "us", "ap")
    monkeypatch.setenv("VOXERON_CLOUD_REGIONS", "uk, eu,uk")
    assert CloudConfig().regions == ("uk", "eu")
    for bad in ("mars", "", " , "):
        monkeypatch.setenv("VOXERON_CLOUD_REGIONS", bad)
        with pytest.raises(ValidationError, match="regions"):
            CloudConfig()
