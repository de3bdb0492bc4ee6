"""The database layer's own errors: repositories never see sqlite3 or psycopg exceptions."""

from __future__ import annotations


class DatabaseError(Exception):
    """Any failure of the cloud database layer."""


class DatabaseUrlError(DatabaseError, ValueError):
    """A database URL this layer cannot open (unknown scheme, missing path)."""


class TenantScopeError(DatabaseError):
    """A tenant-table statement outside a tenant scope, or one that does not bind :tenant_id.

    Raised before anything reaches the database: on SQLite this check is the isolation;
    on PostgreSQL it is the first of two walls (Row-Level Security is the second).
    """


class UniqueViolation(DatabaseError):
    """A row with the same key already exists."""


class ConstraintViolation(DatabaseError):
    """A CHECK, NOT NULL or foreign-key constraint refused the row."""


class PermissionDenied(DatabaseError):
    """The database refused the statement: a missing grant, a Row-Level Security policy
    (a row of another tenant), or the append-only trigger of the audit log."""
