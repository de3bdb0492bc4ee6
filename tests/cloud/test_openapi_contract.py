"""`voxeron contracts check` for the HTTP API: additive passes within a minor, breaking fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from voxeron.contracts_openapi import (
    check_openapi,
    live_openapi,
    openapi_breaking_changes,
    snapshot_path,
    write_openapi,
)

REPO_CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    return live_openapi()


def test_live_api_is_compatible_with_its_committed_snapshot(live: dict[str, Any]) -> None:
    problems, _ = check_openapi(REPO_CONTRACTS, live)
    assert problems == []
    assert snapshot_path(REPO_CONTRACTS, live["info"]["version"]).exists()


def test_additive_changes_pass_with_a_note(tmp_path: Path, live: dict[str, Any]) -> None:
    write_openapi(tmp_path, live)
    grown = copy.deepcopy(live)
    grown["paths"]["/api/v1/new-thing"] = {"get": {"responses": {"200": {}}}}
    tenant = grown["components"]["schemas"]["Tenant"]
    tenant["properties"]["nickname"] = {"type": "string"}
    op = grown["paths"]["/api/v1/tenants"]["get"]
    op["parameters"].append({"in": "query", "name": "q", "required": False,
                             "schema": {"type": "string"}})
    problems, notes = check_openapi(tmp_path, grown)
    assert problems == [] and len(notes) == 1 and "additive" in notes[0]


def test_removed_operation_path_and_field_fail(tmp_path: Path, live: dict[str, Any]) -> None:
    write_openapi(tmp_path, live)
    broken = copy.deepcopy(live)
    del broken["paths"]["/api/v1/tenants/{tenant_id}/crl"]
    del broken["paths"]["/api/v1/tenants"]["post"]
    del broken["components"]["schemas"]["Tenant"]["properties"]["region"]
    problems, _ = check_openapi(tmp_path, broken)
    text = "\n".join(problems)
    assert "/api/v1/tenants/{tenant_id}/crl: path removed" in text
    assert "POST /api/v1/tenants: operation removed" in text
    assert "components/schemas/Tenant: #/properties/region: removed" in text


def test_newly_required_request_field_and_parameter_fail(live: dict[str, Any]) -> None:
    new = copy.deepcopy(live)
    new["components"]["schemas"]["TenantCreate"]["required"].append("tier")
    new["paths"]["/api/v1/tenants"]["get"]["parameters"].append(
        {"in": "query", "name": "must", "required": True, "schema": {"type": "string"}})
    problems = openapi_breaking_changes(live, new)
    assert any("TenantCreate" in p and "newly required ['tier']" in p for p in problems)
    assert any("parameter must (query): new and required" in p for p in problems)


def test_a_breaking_later_minor_snapshot_fails(tmp_path: Path, live: dict[str, Any]) -> None:
    write_openapi(tmp_path, live)
    now = live["info"]["version"]
    major_no, minor_no = (int(x) for x in now.split("."))
    next_minor = f"{major_no}.{minor_no + 1}"
    later = copy.deepcopy(live)
    later["info"]["version"] = next_minor
    del later["paths"]["/healthz"]
    write_openapi(tmp_path, later)
    problems, _ = check_openapi(tmp_path, later)
    assert any(f"{next_minor}.openapi.json breaks {now}.openapi.json" in p and "/healthz" in p
               for p in problems)
    major = copy.deepcopy(later)
    major["info"]["version"] = f"{major_no + 1}.0"
    write_openapi(tmp_path, major)
    (tmp_path / "public-api" / f"{next_minor}.openapi.json").unlink()
    assert check_openapi(tmp_path, major)[0] == []


def test_snapshots_are_never_rewritten(tmp_path: Path, live: dict[str, Any]) -> None:
    p = write_openapi(tmp_path, live)
    assert p is not None and json.loads(p.read_text()) == live
    assert write_openapi(tmp_path, {**live, "paths": {}}) is None
    assert json.loads(p.read_text()) == live
