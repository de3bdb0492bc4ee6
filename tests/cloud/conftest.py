"""The cloud database contract runs on both backends: a SQLite file and a real PostgreSQL.

PostgreSQL (127.0.0.1:5432, user postgres, trust) gets one throwaway database per test
session and application role names unique to the run (roles are cluster-wide); both are
dropped afterwards. Tests keep apart by minting their own tenant ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from cloud.db import Database, open_database
from tests.cloud.control_client import app_role, control_app, control_config

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class PgServer:
    """The session's throwaway database: owner URL and the app role the layer will use."""

    url: str
    app_role: str

    @property
    def fleet_role(self) -> str:
        return f"{self.app_role}_fleet"

    def connect_as(self, role: str) -> psycopg.Connection[tuple[object, ...]]:
        """A raw connection as `role` (trust auth): 'directly at the database'."""
        return psycopg.connect(self.url.replace("postgres@", f"{role}@", 1), autocommit=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    run = uuid.uuid4().hex[:10]
    name, role = f"vx_cloud_test_{run}", f"vx_app_{run}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    server = PgServer(f"postgresql://postgres@127.0.0.1:5432/{name}", role)
    try:
        yield server
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
            admin.execute(f'DROP ROLE IF EXISTS "{role}_fleet"')


def database_url(backend: str, tmp_path: Path, pg: PgServer | None) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'control.sqlite3'}"
    assert pg is not None
    return pg.url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    pg = request.getfixturevalue("pg_server") if backend == "postgresql" else None
    return database_url(backend, tmp_path, pg)


@pytest.fixture
def database(db_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else "voxeron_app")
    db = open_database(db_url, app_role=role)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def client(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The control API over a TestClient on each backend (a module may define its own)."""
    role = (request.getfixturevalue("pg_server").app_role
            if db_url.startswith("postgresql") else None)
    with control_app(control_config(tmp_path, db_url, app_role(db_url, role))) as c:
        yield c
