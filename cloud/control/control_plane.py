"""Mounts the control-plane API (tenants, devices, tokens, audit, rollouts, flags) on the app.

`install_control_plane` opens the control database, adds the routers and the
ControlError -> ErrorEnvelope handler, and closes the database when the app shuts down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cloud.config import CloudConfig
from cloud.control import devices_api, flags_api, rollout_api, tenants_api, tokens_api, usage_api
from cloud.control.api_errors import envelope_response
from cloud.control.control_errors import ControlError
from cloud.control.control_state import ControlPlane
from cloud.control.rate_limit import (
    LIMIT_RESPONSES,
    TENANT_LIMITS,
    InProcessLimiter,
    RateLimited,
    rate_limited_response,
)
from cloud.integration import routes as integration_routes
from sync.contracts.errors import ErrorEnvelope

_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}


async def _control_error(request: Request, exc: ControlError) -> JSONResponse:
    return envelope_response(_STATUS[exc.kind], ErrorEnvelope(
        code=exc.code, category="validation", message=exc.message))


def install_control_plane(app: FastAPI, cfg: CloudConfig) -> ControlPlane:
    """Open the control plane for `cfg` and serve it from `app` until the app stops."""
    control = ControlPlane.open(cfg)
    app.state.control = control
    app.add_exception_handler(ControlError, _control_error)  # type: ignore[arg-type]
    app.state.rate_limiter = InProcessLimiter()  # a shared (Redis) limiter can replace it
    app.add_exception_handler(RateLimited, rate_limited_response)  # type: ignore[arg-type]
    for module in (tenants_api, devices_api, tokens_api):
        app.include_router(module.router, dependencies=[TENANT_LIMITS],
                           responses=LIMIT_RESPONSES)
    for module in (rollout_api, flags_api, usage_api):  # routers carry TENANT_LIMITS themselves
        app.include_router(module.router)
    app.include_router(integration_routes.router, dependencies=[TENANT_LIMITS],
                       responses=LIMIT_RESPONSES)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        try:
            async with inner(a) as state:
                yield state
        finally:
            control.close()

    app.router.lifespan_context = lifespan
    return control
