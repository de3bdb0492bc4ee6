"""The one API every cloud repository uses: a transaction in a scope, `:name` SQL, dict rows.

A transaction is either tenant-scoped (the default way in: `db.tenant(tenant_id)`) or in
the explicit fleet scope (`db.fleet()`) for the few cross-tenant reads and writes (fleet
dashboard, ingest, token authentication, ops listings). In a tenant scope every statement
that names a tenant table must bind `:tenant_id`; the layer supplies its value, so a
repository cannot ask for another tenant by mistake.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cloud.db.errors import TenantScopeError
from cloud.db.schema import TENANT_TABLES
from cloud.db.sql_text import placeholders, tables_named

Row = dict[str, Any]
Params = Mapping[str, object]
ScopeKind = Literal["tenant", "fleet"]


@dataclass(frozen=True)
class Scope:
    """Whose rows a transaction may touch: one tenant's, or (explicitly) the whole fleet's."""

    kind: ScopeKind
    tenant_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "tenant" and not self.tenant_id:
            raise TenantScopeError("a tenant scope needs a non-empty tenant id")


def iso(t: datetime) -> str:
    """A timestamp as stored in SQLite TEXT columns: UTC, milliseconds, sortable."""
    if t.tzinfo is None:
        raise ValueError("naive datetime; pass an aware (UTC) time")
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def json_value(value: object) -> Any:
    """A JSON column as Python data: SQLite hands back text, PostgreSQL parsed JSONB."""
    return json.loads(value) if isinstance(value, str | bytes) else value


class Transaction(ABC):
    """One open transaction of a `Database`; commits when its `with` block ends cleanly.

    `dialect` lets a repository pick dialect-specific text where SQL differs (JSON paths);
    everything else should be one statement for both.
    """

    dialect: Literal["sqlite", "postgresql"]

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @property
    def tenant_id(self) -> str | None:
        return self.scope.tenant_id

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run a statement; the number of rows it changed."""
        count, _ = self._run(sql, self._bind(sql, params), want_rows=False)
        return count

    def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        _, rows = self._run(sql, self._bind(sql, params), want_rows=True)
        return rows

    def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def _bind(self, sql: str, params: Params | None) -> dict[str, object]:
        bound = dict(params or {})
        if self.scope.kind == "tenant":
            touched = tables_named(sql, TENANT_TABLES)
            if touched and "tenant_id" not in placeholders(sql):
                raise TenantScopeError(
                    f"statement on tenant table(s) {sorted(touched)} does not bind :tenant_id")
            given = bound.get("tenant_id", self.scope.tenant_id)
            if given != self.scope.tenant_id:
                raise TenantScopeError("a tenant-scoped statement may only bind its own tenant id")
            bound["tenant_id"] = self.scope.tenant_id
        return {k: self._adapt(v) for k, v in bound.items()}

    @abstractmethod
    def serialize_on(self, key: str) -> None:
        """Hold a lock on `key` until this transaction ends, so transactions naming the same
        key run one after another (e.g. read MAX(version), then insert version + 1).

        SQLite needs nothing: every write transaction already holds the file's one write
        lock from BEGIN IMMEDIATE. PostgreSQL takes a transaction-scoped advisory lock.
        """

    @abstractmethod
    def _adapt(self, value: object) -> object:
        """A parameter value as this backend's driver wants it (datetimes, JSON)."""

    @abstractmethod
    def _run(self, sql: str, params: dict[str, object],
             want_rows: bool) -> tuple[int, list[Row]]:
        """Execute on the driver; (rowcount, rows)."""


def adapt_json(value: object) -> object:
    """Dicts and lists are JSON documents (the layer has no array columns)."""
    if isinstance(value, Mapping | Sequence) and not isinstance(value, str | bytes):
        return json.dumps(value, sort_keys=True)
    return value
