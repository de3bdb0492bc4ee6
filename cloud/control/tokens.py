"""Scoped API tokens: a random secret shown once, only its SHA-256 kept, expiry, revocation.

A token belongs to one tenant (scopes `tenant:read`, `tenant:write`) or to ops (tenant
NULL, scope `ops:*`, visible only in the fleet scope). The secret has 256 bits of
entropy, so a plain SHA-256 (no salt, no slow hash) is enough to make the stored value
useless to a reader of the database while keeping lookup one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.control.audit import ChangeContext, record
from cloud.control.control_errors import ControlError
from cloud.db import Transaction, json_value
from sync.ids import new_id

TokenScope = Literal["tenant:read", "tenant:write", "ops:*"]
TENANT_SCOPES: frozenset[str] = frozenset({"tenant:read", "tenant:write"})
OPS_SCOPE = "ops:*"
SECRET_PREFIX = "vxt_"
_LAST_USED_GRANULARITY = timedelta(minutes=1)


class TokenCreate(BaseModel):
    """A token to issue; `expires_in_days` None means it never expires (discouraged)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[TokenScope] = Field(min_length=1)
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


class ApiToken(BaseModel):
    """A token as stored: never its secret."""

    token_id: str
    tenant_id: str | None
    name: str
    scopes: list[TokenScope]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class IssuedToken(ApiToken):
    """A token just issued, with its secret: the only time the secret is ever returned."""

    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token(row: dict[str, Any]) -> ApiToken:
    data = {k: v for k, v in row.items() if k != "secret_sha256"}
    return ApiToken.model_validate({**data, "scopes": json_value(row["scopes"])})


def _snapshot(t: ApiToken) -> dict[str, Any]:
    return ApiToken.model_validate(t.model_dump()).model_dump(mode="json")


def issue_token(tx: Transaction, ctx: ChangeContext, body: TokenCreate) -> IssuedToken:
    """A new token for the transaction's tenant (tenant scope) or for ops (fleet scope)."""
    tenant_id = tx.tenant_id
    scopes = sorted(set(body.scopes))
    if tenant_id is not None and not set(scopes) <= TENANT_SCOPES:
        raise ControlError("invalid", "token.bad_scope",
                           "a tenant token may only carry tenant:read and tenant:write")
    if tenant_id is None and scopes != [OPS_SCOPE]:
        raise ControlError("invalid", "token.bad_scope", "an ops token carries exactly ops:*")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = IssuedToken(
        token_id="tok_" + new_id("job").partition("_")[2], tenant_id=tenant_id, name=body.name,
        scopes=scopes, created_by=ctx.actor, created_at=ctx.now,  # type: ignore[arg-type]
        expires_at=(ctx.now + timedelta(days=body.expires_in_days)
                    if body.expires_in_days else None),
        revoked_at=None, last_used_at=None, secret=secret)
    params: dict[str, object] = {
        "token_id": token.token_id, "name": token.name, "scopes": scopes,
        "hash": hash_secret(secret), "by": ctx.actor, "now": ctx.now,
        "expires_at": token.expires_at}
    if tx.scope.kind == "fleet":
        params["tenant_id"] = None
    tx.execute(
        "INSERT INTO api_tokens (token_id, tenant_id, name, scopes, secret_sha256, created_by, "
        "created_at, expires_at) VALUES (:token_id, :tenant_id, :name, :scopes, :hash, :by, "
        ":now, :expires_at)", params)
    record(tx, ctx, "token.create", f"tokens/{token.token_id}", None, _snapshot(token))
    return token


def tenant_tokens(tx: Transaction) -> list[ApiToken]:
    rows = tx.fetch_all("SELECT * FROM api_tokens WHERE tenant_id = :tenant_id "
                        "ORDER BY created_at, token_id")
    return [_token(r) for r in rows]


def revoke_token(tx: Transaction, ctx: ChangeContext, token_id: str) -> ApiToken:
    """Revoke one of the tenant's tokens (idempotent); not_found for any other token."""
    row = tx.fetch_one("SELECT * FROM api_tokens WHERE tenant_id = :tenant_id "
                       "AND token_id = :token_id", {"token_id": token_id})
    if row is None:
        raise ControlError("not_found", "token.not_found", "no such token")
    before = _token(row)
    if before.revoked_at is not None:
        return before
    tx.execute("UPDATE api_tokens SET revoked_at = :now WHERE tenant_id = :tenant_id "
               "AND token_id = :token_id", {"now": ctx.now, "token_id": token_id})
    after = before.model_copy(update={"revoked_at": ctx.now})
    record(tx, ctx, "token.revoke", f"tokens/{token_id}", _snapshot(before), _snapshot(after))
    return after


TokenVerdict = Literal["ok", "unknown", "expired", "revoked"]


def verify_secret(fleet_tx: Transaction, secret: str,
                  now: datetime) -> tuple[TokenVerdict, ApiToken | None]:
    """Look a presented secret up by its hash (a fleet read: the tenant is not known yet)
    and note when it was last used, at most once a minute per token."""
    if not secret.startswith(SECRET_PREFIX):
        return "unknown", None
    row = fleet_tx.fetch_one("SELECT * FROM api_tokens WHERE secret_sha256 = :hash",
                             {"hash": hash_secret(secret)})
    if row is None:
        return "unknown", None
    token = _token(row)
    if token.revoked_at is not None:
        return "revoked", token
    if token.expires_at is not None and token.expires_at <= now:
        return "expired", token
    if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_GRANULARITY:
        fleet_tx.execute("UPDATE api_tokens SET last_used_at = :now WHERE token_id = :token_id",
                         {"now": now, "token_id": token.token_id})
    return "ok", token
