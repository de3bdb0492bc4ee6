"""The cloud's one database layer: SQLite (single node) or PostgreSQL with forced RLS."""

from cloud.db.database import Backend, Database, open_database
from cloud.db.errors import (
    ConstraintViolation,
    DatabaseError,
    DatabaseUrlError,
    PermissionDenied,
    TenantScopeError,
    UniqueViolation,
)
from cloud.db.transaction import Row, Transaction, iso, json_value

__all__ = [
    "Backend", "ConstraintViolation", "Database", "DatabaseError", "DatabaseUrlError",
    "PermissionDenied", "Row", "TenantScopeError", "Transaction", "UniqueViolation",
    "iso", "json_value", "open_database",
]
