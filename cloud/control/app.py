"""The cloud HTTP API (FastAPI): fleet devices, orders, health, and the fleet dashboard.

Reads only; writes arrive over MQTT through ingest. Every error body is an ErrorEnvelope
(see `api_errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query
from pydantic import BaseModel

from cloud.config import CloudConfig
from cloud.control.api_errors import ApiError, install_error_handlers
from cloud.control.cache import RedisLimiter
from cloud.control.control_plane import install_control_plane
from cloud.control.db import CloudDb, DeviceRecord, OrderRecord
from cloud.control.dependencies import DbDep
from cloud.control.device_routes import router as device_router
from cloud.dashboard.routes import install_dashboard
from sync.contracts.errors import Correlation, ErrorEnvelope


class Healthz(BaseModel):
    """Liveness of the API process and its database."""

    ok: bool
    devices: int


def create_app(cfg: CloudConfig) -> FastAPI:
    """The API over the database at `cfg.db_path` (opened now, closed on shutdown)."""
    db = CloudDb.for_config(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        db.close()
        app.state.cache.close()

    app = FastAPI(title="voxeron cloud", version="1.2", lifespan=lifespan)
    app.state.db = db
    install_error_handlers(app)

    @app.get("/healthz")
    def healthz(db: DbDep) -> Healthz:
        return Healthz(ok=True, devices=len(db.devices()))

    @app.get("/api/v1/devices")
    def list_devices(db: DbDep, tenant_id: str | None = None) -> list[DeviceRecord]:
        return db.devices(tenant_id)

    @app.get("/api/v1/orders")
    def list_orders(
        db: DbDep, tenant_id: Annotated[str, Query(min_length=1)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[OrderRecord]:
        return db.orders(tenant_id, limit)

    @app.get("/api/v1/orders/{order_id}")
    def get_order(db: DbDep, order_id: str) -> OrderRecord:
        record = db.order(order_id)
        if record is None:
            raise ApiError(404, ErrorEnvelope(
                code="order.not_found", category="validation",
                message="no order with this id has reached the cloud",
                correlation=Correlation(order_id=order_id),
            ))
        return record

    app.include_router(device_router)
    install_control_plane(app, cfg)
    cache = db.cache  # Redis hot cache (CloudDb drops desired entries); else the database
    app.state.cache = cache
    if cache.configured:
        app.state.rate_limiter = RedisLimiter(cache)  # replicas share one budget per tenant
    install_dashboard(app, cfg)
    return app
