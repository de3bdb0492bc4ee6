"""HTTP route of the fleet dashboard, mounted by the cloud API app."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from cloud.control.dependencies import DbDep
from cloud.dashboard.fleet_page import render_fleet

router = APIRouter()


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(db: DbDep) -> HTMLResponse:
    """Every device of the fleet and the latest orders of every tenant."""
    return HTMLResponse(render_fleet(db.devices(), db.orders(limit=30), datetime.now(UTC)))
