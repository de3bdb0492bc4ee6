"""Typed request dependencies of the cloud API, declared once and used by every route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cloud.control.db import CloudDb


def get_db(request: Request) -> CloudDb:
    db: CloudDb = request.app.state.db
    return db


DbDep = Annotated[CloudDb, Depends(get_db)]
