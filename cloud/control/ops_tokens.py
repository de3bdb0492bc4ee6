"""Tokens issued from the command line, so a fresh install can make its first API call.

`voxeron cloud token create --ops` writes an ops token (hashed, audited with actor
`cli`) straight into the control database and prints its secret once.
"""

from __future__ import annotations

from datetime import datetime

from cloud.config import CloudConfig
from cloud.control.audit import ChangeContext
from cloud.control.control_state import ControlPlane
from cloud.control.tenants import existing_tenant
from cloud.control.tokens import OPS_SCOPE, IssuedToken, TokenCreate, TokenScope, issue_token
from sync.ids import new_id


def create_cli_token(cfg: CloudConfig, now: datetime, *, tenant_id: str | None, name: str,
                     expires_in_days: int | None, scopes: list[TokenScope] | None = None,
                     ) -> IssuedToken:
    """An ops token (tenant_id None) or a token of an existing tenant, audited as `cli`."""
    control = ControlPlane.open(cfg)
    ctx = ChangeContext(actor="cli", request_id=new_id("job"), now=now)
    try:
        if tenant_id is None:
            body = TokenCreate(name=name, scopes=[OPS_SCOPE], expires_in_days=expires_in_days)
            with control.db.fleet() as tx:
                return issue_token(tx, ctx, body)
        body = TokenCreate(name=name, scopes=scopes or ["tenant:read", "tenant:write"],
                           expires_in_days=expires_in_days)
        with existing_tenant(control.db, tenant_id) as tx:
            return issue_token(tx, ctx, body)
    finally:
        control.close()
