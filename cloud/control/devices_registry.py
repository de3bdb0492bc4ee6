"""Device enrolment: a CSR in, a certificate signed by the tenant CA out; revocation.

The cloud decides the identity: the tenant comes from the request path (the caller's
token), the device id from the request, and the certificate subject is built from both
by `TenantCa`, never copied from the CSR (a CSR asking for anything else is refused).
The registry keeps serial and fingerprint; a revoked device's serial is listed in the
tenant CRL. One certificate per device id: a revoked id stays revoked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.control.audit import ChangeContext, record
from cloud.control.control_errors import ControlError
from cloud.control.tenant_ca import (
    EnrollmentRefused,
    TenantCaStore,
    certificate_facts,
    tenant_crl_pem,
)
from cloud.control.tenants import TENANT_ID_PATTERN, read_tenant
from cloud.db import Transaction, UniqueViolation

DeviceStatus = Literal["active", "revoked"]


class EnrolRequest(BaseModel):
    """The device's id and its CSR (PEM) for `<tenant_id>/d/<device_id>`."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=TENANT_ID_PATTERN)
    csr_pem: str = Field(min_length=1, max_length=16_384)


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="unspecified", min_length=1, max_length=500)


class EnrolledDevice(BaseModel):
    tenant_id: str
    device_id: str
    status: DeviceStatus
    serial: str
    fingerprint_sha256: str
    not_after: datetime
    enrolled_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


class Enrolment(EnrolledDevice):
    """An enrolment's answer: the device certificate and the CA that signed it."""

    certificate_pem: str
    ca_certificate_pem: str


_COLUMNS = ("tenant_id, device_id, status, serial, fingerprint_sha256, not_after, "
            "enrolled_at, revoked_at, revoke_reason")


def _snapshot(d: EnrolledDevice) -> dict[str, Any]:
    return EnrolledDevice.model_validate(d.model_dump()).model_dump(mode="json")


def enrol_device(tx: Transaction, ctx: ChangeContext, cas: TenantCaStore,
                 body: EnrolRequest) -> Enrolment:
    """Sign the CSR with the tenant's CA and register the device, audited, in `tx`."""
    tenant_id = tx.tenant_id
    if tenant_id is None or read_tenant(tx) is None:
        raise ControlError("not_found", "tenant.not_found", "no such tenant")
    if find_device(tx, body.device_id) is not None:
        raise ControlError("conflict", "device.exists",
                           f"device {body.device_id} is already enrolled (or was revoked)")
    ca = cas.load_or_create(tenant_id, ctx.now)
    try:
        cert_pem = ca.sign_device_csr(body.csr_pem.encode(), body.device_id, ctx.now)
    except EnrollmentRefused as exc:
        raise ControlError("invalid", exc.code, str(exc)) from exc
    facts = certificate_facts(cert_pem)
    device = EnrolledDevice(
        tenant_id=tenant_id, device_id=body.device_id, status="active", serial=facts.serial_hex,
        fingerprint_sha256=facts.fingerprint_sha256, not_after=facts.not_after,
        enrolled_at=ctx.now, revoked_at=None, revoke_reason=None)
    try:
        tx.execute(
            "INSERT INTO enrolled_devices (tenant_id, device_id, status, serial, "
            "fingerprint_sha256, cert_pem, not_after, enrolled_at) VALUES (:tenant_id, "
            ":device_id, 'active', :serial, :fp, :cert, :not_after, :now)",
            {"device_id": device.device_id, "serial": device.serial, "fp": device.fingerprint_sha256,
             "cert": cert_pem.decode(), "not_after": device.not_after, "now": ctx.now})
    except UniqueViolation as exc:
        raise ControlError("conflict", "device.exists",
                           f"device {body.device_id} is already enrolled") from exc
    record(tx, ctx, "device.enrol", f"devices/{device.device_id}", None, _snapshot(device))
    return Enrolment(**device.model_dump(), certificate_pem=cert_pem.decode(),
                     ca_certificate_pem=ca.cert_pem.decode())


def find_device(tx: Transaction, device_id: str) -> EnrolledDevice | None:
    row = tx.fetch_one(f"SELECT {_COLUMNS} FROM enrolled_devices WHERE tenant_id = :tenant_id "
                       "AND device_id = :device_id", {"device_id": device_id})
    return EnrolledDevice.model_validate(row) if row else None


def get_device(tx: Transaction, device_id: str) -> EnrolledDevice:
    device = find_device(tx, device_id)
    if device is None:
        raise ControlError("not_found", "device.not_found", "no such device")
    return device


def tenant_devices(tx: Transaction) -> list[EnrolledDevice]:
    rows = tx.fetch_all(f"SELECT {_COLUMNS} FROM enrolled_devices WHERE tenant_id = :tenant_id "
                        "ORDER BY device_id")
    return [EnrolledDevice.model_validate(r) for r in rows]


def revoke_device(tx: Transaction, ctx: ChangeContext, device_id: str,
                  reason: str) -> EnrolledDevice:
    """Mark the device revoked (idempotent), audited; its serial joins the tenant CRL."""
    before = get_device(tx, device_id)
    if before.status == "revoked":
        return before
    tx.execute("UPDATE enrolled_devices SET status = 'revoked', revoked_at = :now, "
               "revoke_reason = :reason WHERE tenant_id = :tenant_id AND device_id = :device_id",
               {"now": ctx.now, "reason": reason, "device_id": device_id})
    after = before.model_copy(update={"status": "revoked", "revoked_at": ctx.now,
                                      "revoke_reason": reason})
    record(tx, ctx, "device.revoke", f"devices/{device_id}", _snapshot(before), _snapshot(after))
    return after


def tenant_crl(tx: Transaction, cas: TenantCaStore, now: datetime) -> bytes:
    """The tenant CA's CRL (PEM) with every revoked device certificate."""
    tenant_id = tx.tenant_id
    if tenant_id is None or read_tenant(tx) is None:
        raise ControlError("not_found", "tenant.not_found", "no such tenant")
    rows = tx.fetch_all("SELECT serial, revoked_at FROM enrolled_devices WHERE tenant_id = "
                        ":tenant_id AND status = 'revoked' ORDER BY serial")
    revoked = [(str(r["serial"]), _as_time(r["revoked_at"])) for r in rows]
    return tenant_crl_pem(cas.load_or_create(tenant_id, now), revoked, now)


def _as_time(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
