"""Bearer-token authentication and tenant access rules of the control-plane API.

Missing, unknown, expired or revoked token: 401. A tenant token naming another tenant's
resource: 404, exactly what a missing tenant answers, so a token never learns whether
another tenant's resource exists. A tenant token lacking a scope on its own tenant: 403.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import Depends, Header
from pydantic import BaseModel

from cloud.control.api_errors import ApiError
from cloud.control.audit import ChangeContext
from cloud.control.control_state import ControlDep, NowDep
from cloud.control.tokens import OPS_SCOPE, verify_secret
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.ids import new_id

Need = Literal["read", "write"]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in ((401, "missing, unknown, expired or revoked token"),
                                (403, "the token lacks a scope on its own tenant"),
                                (404, "no such resource (or another tenant's)"),
                                (409, "already exists"), (422, "invalid request"))
}
"""Documented error answers of every control-plane route: all are ErrorEnvelopes."""


class Principal(BaseModel):
    """Who is calling: an ops token, or a token of one tenant with its scopes."""

    actor: str
    token_id: str | None
    tenant_id: str | None
    scopes: frozenset[str]

    @property
    def is_ops(self) -> bool:
        return OPS_SCOPE in self.scopes


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, ErrorEnvelope(code=code, category="validation", message=message))


def authenticate(control: ControlDep, now: NowDep,
                 authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller of this request, from `Authorization: Bearer <token>`."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("auth.missing", "send Authorization: Bearer <api token>")
    secret = secret.strip()
    boot = control.bootstrap_ops_token
    if boot and hmac.compare_digest(secret.encode(), boot.encode()):
        return Principal(actor="bootstrap", token_id=None, tenant_id=None,
                         scopes=frozenset({OPS_SCOPE}))
    with control.db.fleet() as tx:
        verdict, token = verify_secret(tx, secret, now)
    if verdict != "ok" or token is None:
        raise _unauthorized(f"auth.{'invalid' if verdict == 'unknown' else verdict}",
                            {"unknown": "unknown API token", "expired": "API token has expired",
                             "revoked": "API token was revoked"}.get(verdict, "invalid token"))
    return Principal(actor=f"token:{token.token_id}", token_id=token.token_id,
                     tenant_id=token.tenant_id, scopes=frozenset(token.scopes))


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def tenant_not_found(tenant_id: str) -> ApiError:
    return ApiError(404, ErrorEnvelope(code="tenant.not_found", category="validation",
                                       message="no such tenant",
                                       correlation=Correlation(tenant_id=tenant_id)))


def require_tenant(principal: Principal, tenant_id: str, need: Need) -> None:
    """Allow ops anywhere; a tenant token only on its own tenant with the needed scope."""
    if principal.is_ops:
        return
    if principal.tenant_id != tenant_id:
        raise tenant_not_found(tenant_id)
    if f"tenant:{need}" not in principal.scopes:
        raise ApiError(403, ErrorEnvelope(
            code="auth.scope", category="validation",
            message=f"this token lacks the tenant:{need} scope"))


def require_ops(principal: Principal) -> None:
    if not principal.is_ops:
        raise ApiError(403, ErrorEnvelope(code="auth.scope", category="validation",
                                          message="this needs an ops token (scope ops:*)"))


def change_context(principal: PrincipalDep, now: NowDep,
                   x_request_id: Annotated[str | None, Header(max_length=128)] = None,
                   ) -> ChangeContext:
    """Actor, request id (the caller's, or minted) and time of a change, for the audit log."""
    return ChangeContext(actor=principal.actor, request_id=x_request_id or new_id("job"),
                         now=now)


ChangeDep = Annotated[ChangeContext, Depends(change_context)]
