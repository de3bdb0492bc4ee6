"""HTTP routes for device enrolment, revocation and health history (`/api/v1/tenants/{tenant_id}/devices`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from cloud.control.api_errors import ApiError
from cloud.control.auth import ERROR_RESPONSES, ChangeDep, PrincipalDep, require_tenant
from cloud.control.control_state import ControlDep, NowDep
from cloud.control.dependencies import DbDep
from cloud.control.devices_registry import (
    EnrolledDevice,
    Enrolment,
    EnrolRequest,
    RevokeRequest,
    enrol_device,
    get_device,
    revoke_device,
    tenant_crl,
    tenant_devices,
)
from cloud.control.health_history import DEFAULT_LIMIT, MAX_LIMIT, DeviceHealthHistory
from cloud.control.tenants import existing_tenant
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.structured_log import log_context

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["devices"], responses=ERROR_RESPONSES)


@router.post("/devices", status_code=status.HTTP_201_CREATED)
def enrol(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
          body: EnrolRequest) -> Enrolment:
    """Sign the device's CSR with the tenant CA; the answer carries the certificate."""
    require_tenant(principal, tenant_id, "write")
    with log_context(tenant_id=tenant_id, device_id=body.device_id, request_id=ctx.request_id), \
            existing_tenant(control.db, tenant_id) as tx:
        return enrol_device(tx, ctx, control.cas, body)


@router.get("/devices")
def list_devices(control: ControlDep, principal: PrincipalDep,
                 tenant_id: str) -> list[EnrolledDevice]:
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return tenant_devices(tx)


@router.get("/devices/{device_id}")
def get(control: ControlDep, principal: PrincipalDep, tenant_id: str,
        device_id: str) -> EnrolledDevice:
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        return get_device(tx, device_id)


@router.get("/devices/{device_id}/health")
def health_history(db: DbDep, principal: PrincipalDep, tenant_id: str, device_id: str,
                   since: Annotated[AwareDatetime | None, Query(
                       description="only reports at or after this time (with a UTC offset)")
                   ] = None,
                   limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
                   ) -> DeviceHealthHistory:
    """The device's health reports, newest first, kept for `health_history_days`."""
    require_tenant(principal, tenant_id, "read")
    history = db.health_history(tenant_id, device_id, since, limit)
    if history is None:
        raise ApiError(404, ErrorEnvelope(
            code="device.not_found", category="validation",
            message="this tenant has no device with this id",
            correlation=Correlation(tenant_id=tenant_id, device_id=device_id)))
    return history


@router.post("/devices/{device_id}/revoke")
def revoke(control: ControlDep, principal: PrincipalDep, ctx: ChangeDep, tenant_id: str,
           device_id: str, body: RevokeRequest | None = None) -> EnrolledDevice:
    """Revoke the device's certificate (idempotent); the tenant CRL lists it from now on."""
    require_tenant(principal, tenant_id, "write")
    reason = body.reason if body else "unspecified"
    with log_context(tenant_id=tenant_id, device_id=device_id, request_id=ctx.request_id), \
            existing_tenant(control.db, tenant_id) as tx:
        return revoke_device(tx, ctx, device_id, reason)


@router.get("/crl", response_class=Response,
            responses={200: {"content": {"application/x-pem-file": {}}}})
def crl(control: ControlDep, principal: PrincipalDep, tenant_id: str, now: NowDep) -> Response:
    """The tenant CA's revocation list (PEM), for the broker's crlfile."""
    require_tenant(principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        pem = tenant_crl(tx, control.cas, now)
    return Response(pem, media_type="application/x-pem-file")
