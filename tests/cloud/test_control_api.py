"""The control-plane API with two tenants, on both backends: isolation, tokens, audit.

A token of tenant A asking for, or writing to, any resource of tenant B gets 404 (as if
it did not exist) and nothing of B changes; missing/unknown/expired/revoked tokens get
401; every error body is an ErrorEnvelope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from cloud.config import CloudConfig
from cloud.control.app import create_app
from cloud.control.control_state import utc_now
from cloud.control.tenant_ca import make_device_csr
from sync.contracts.errors import ErrorEnvelope

OPS = "ops-bootstrap-" + "x" * 40


@dataclass
class Tenant:
    tenant_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def client(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    cfg = CloudConfig(db_path=tmp_path / "cloud.sqlite3", tenant_ca_dir=tmp_path / "ca",
                      database_url=db_url, database_app_role=role, bootstrap_ops_token=OPS)
    with TestClient(create_app(cfg)) as c:
        yield c


def _ops() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPS}"}


def _envelope(resp: Any, status: int, code: str | None = None) -> ErrorEnvelope:
    assert resp.status_code == status, resp.text
    env = ErrorEnvelope.model_validate(resp.json())
    if code:
        assert env.code == code
    return env


def _tenant(client: TestClient, name: str) -> Tenant:
    r = client.post("/api/v1/tenants", headers=_ops(), json={"name": name, "tier": "starter"})
    assert r.status_code == 201, r.text
    tenant_id = r.json()["tenant_id"]
    t = client.post(f"/api/v1/tenants/{tenant_id}/tokens", headers=_ops(),
                    json={"name": "admin", "scopes": ["tenant:read", "tenant:write"]})
    assert t.status_code == 201, t.text
    return Tenant(tenant_id, t.json()["secret"])


def _enrol(client: TestClient, t: Tenant, device_id: str) -> Any:
    csr = make_device_csr(t.tenant_id, device_id).cert_pem.decode()
    return client.post(f"/api/v1/tenants/{t.tenant_id}/devices", headers=t.auth,
                       json={"device_id": device_id, "csr_pem": csr})


def _state_of(client: TestClient, t: Tenant) -> dict[str, Any]:
    base = f"/api/v1/tenants/{t.tenant_id}"
    return {p: client.get(base + p, headers=_ops()).json()
            for p in ("", "/devices", "/tokens", "/audit")}


def test_tenant_a_gets_404_for_everything_of_tenant_b(client: TestClient) -> None:
    a, b = _tenant(client, "A"), _tenant(client, "B")
    assert _enrol(client, b, "box1").status_code == 201
    b_token_id = client.get(f"/api/v1/tenants/{b.tenant_id}/tokens", headers=b.auth).json()[0][
        "token_id"]
    before = _state_of(client, b)
    base = f"/api/v1/tenants/{b.tenant_id}"
    csr = make_device_csr(b.tenant_id, "box2").cert_pem.decode()
    attempts = [
        ("GET", base, None), ("PATCH", base, {"name": "owned"}),
        ("GET", base + "/devices", None), ("GET", base + "/devices/box1", None),
        ("POST", base + "/devices", {"device_id": "box2", "csr_pem": csr}),
        ("POST", base + "/devices/box1/revoke", {"reason": "mallory"}),
        ("GET", base + "/tokens", None),
        ("POST", base + "/tokens", {"name": "x", "scopes": ["tenant:write"]}),
        ("POST", base + f"/tokens/{b_token_id}/revoke", None),
        ("GET", base + "/audit", None), ("GET", base + "/crl", None),
        ("GET", "/api/v1/tenants/ten_does_not_exist", None),
    ]
    for method, url, body in attempts:
        r = client.request(method, url, headers=a.auth, json=body)
        _envelope(r, 404, "tenant.not_found")
    assert _state_of(client, b) == before
    assert client.get(base, headers=b.auth).status_code == 200


def test_missing_unknown_expired_and_revoked_tokens_get_401(client: TestClient) -> None:
    a = _tenant(client, "A")
    url = f"/api/v1/tenants/{a.tenant_id}"
    _envelope(client.get(url), 401, "auth.missing")
    _envelope(client.get(url, headers={"Authorization": "Basic abc"}), 401, "auth.missing")
    _envelope(client.get(url, headers={"Authorization": "Bearer vxt_nope"}), 401, "auth.invalid")
    short = client.post(url + "/tokens", headers=a.auth,
                        json={"name": "short", "scopes": ["tenant:read"], "expires_in_days": 1})
    secret = short.json()["secret"]
    assert client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    client.app.dependency_overrides[utc_now] = lambda: datetime.now(UTC) + timedelta(days=2)  # type: ignore[attr-defined]
    _envelope(client.get(url, headers={"Authorization": f"Bearer {secret}"}), 401, "auth.expired")
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    revoked = client.post(url + f"/tokens/{short.json()['token_id']}/revoke", headers=a.auth)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert "secret" not in revoked.json()
    _envelope(client.get(url, headers={"Authorization": f"Bearer {secret}"}), 401, "auth.revoked")


def test_scopes_limit_a_tenant_token(client: TestClient) -> None:
    a = _tenant(client, "A")
    url = f"/api/v1/tenants/{a.tenant_id}"
    ro = client.post(url + "/tokens", headers=a.auth,
                     json={"name": "ro", "scopes": ["tenant:read"]}).json()["secret"]
    ro_auth = {"Authorization": f"Bearer {ro}"}
    assert client.get(url + "/devices", headers=ro_auth).status_code == 200
    _envelope(client.post(url + "/tokens", headers=ro_auth,
                          json={"name": "x", "scopes": ["tenant:read"]}), 403, "auth.scope")
    _envelope(client.patch(url, headers=a.auth, json={"tier": "enterprise"}), 403, "auth.scope")
    _envelope(client.get("/api/v1/tenants", headers=a.auth), 403, "auth.scope")
    _envelope(client.post(url + "/tokens", headers=a.auth,
                          json={"name": "x", "scopes": ["ops:*"]}), 422, "token.bad_scope")


def test_enrol_revoke_and_crl(client: TestClient) -> None:
    a = _tenant(client, "A")
    url = f"/api/v1/tenants/{a.tenant_id}"
    r = _enrol(client, a, "box1")
    assert r.status_code == 201, r.text
    body = r.json()
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    ca = x509.load_pem_x509_certificate(body["ca_certificate_pem"].encode())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == f"{a.tenant_id}/d/box1"
    assert body["serial"] == format(cert.serial_number, "x") and body["status"] == "active"
    _envelope(_enrol(client, a, "box1"), 409, "device.exists")
    wrong = make_device_csr(a.tenant_id, "other").cert_pem.decode()
    _envelope(client.post(url + "/devices", headers=a.auth,
                          json={"device_id": "box9", "csr_pem": wrong}), 422,
              "enroll.identity_mismatch")
    _envelope(client.post(url + "/devices", headers=a.auth,
                          json={"device_id": "box9", "csr_pem": "garbage"}), 422, "enroll.bad_csr")
    crl_before = x509.load_pem_x509_crl(client.get(url + "/crl", headers=a.auth).content)
    assert crl_before.get_revoked_certificate_by_serial_number(cert.serial_number) is None
    rv = client.post(url + "/devices/box1/revoke", headers=a.auth, json={"reason": "stolen"})
    assert rv.status_code == 200 and rv.json()["status"] == "revoked"
    crl = x509.load_pem_x509_crl(client.get(url + "/crl", headers=a.auth).content)
    assert crl.is_signature_valid(ca_key)  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    audit = client.get(url + "/audit", headers=a.auth).json()
    actions = [e["action"] for e in audit]
    assert actions[:3] == ["device.revoke", "device.enrol", "token.create"]
    assert audit[0]["before"]["status"] == "active" and audit[0]["after"]["status"] == "revoked"
    assert audit[0]["actor"].startswith("token:") and audit[0]["request_id"]


def test_ops_manage_tenants_and_every_change_is_audited(client: TestClient) -> None:
    r = client.post("/api/v1/tenants", headers={**_ops(), "X-Request-Id": "req-42"}, json={
        "tenant_id": "acme-1", "name": "Acme", "region": "us",
        "quotas": {"calls_per_min": 5}, "retention": {"recordings_days": 7}})
    assert r.status_code == 201, r.text
    assert r.json()["quotas"] == {"calls_per_min": 5, "api_requests_per_s": 10,
                                  "concurrent_integrations": 4}
    _envelope(client.post("/api/v1/tenants", headers=_ops(),
                          json={"tenant_id": "acme-1", "name": "again"}), 409, "tenant.exists")
    _envelope(client.post("/api/v1/tenants", headers=_ops(), json={"name": "x", "region": "mars"}),
              422, "request.invalid")
    p = client.patch("/api/v1/tenants/acme-1", headers=_ops(),
                     json={"tier": "enterprise", "quotas": {"concurrent_integrations": 16}})
    assert p.status_code == 200, p.text
    assert p.json()["tier"] == "enterprise" and p.json()["quotas"]["calls_per_min"] == 5
    assert p.json()["quotas"]["concurrent_integrations"] == 16 and p.json()["region"] == "us"
    _envelope(client.patch("/api/v1/tenants/acme-1", headers=_ops(), json={"region": "eu"}),
              422, "request.invalid")
    assert "acme-1" in [t["tenant_id"] for t in client.get("/api/v1/tenants",
                                                           headers=_ops()).json()]
    audit = client.get("/api/v1/tenants/acme-1/audit", headers=_ops()).json()
    assert [e["action"] for e in audit] == ["tenant.update", "tenant.create"]
    assert audit[0]["before"]["tier"] == "standard" and audit[0]["after"]["tier"] == "enterprise"
    assert audit[1]["request_id"] == "req-42" and audit[1]["actor"] == "bootstrap"
    _envelope(client.get("/api/v1/tenants/nobody/audit", headers=_ops()), 404, "tenant.not_found")


def test_existing_read_endpoints_are_unchanged(client: TestClient) -> None:
    assert client.get("/api/v1/devices").status_code == 200
    assert client.get("/healthz").json()["ok"] is True
