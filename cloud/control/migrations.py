"""Numbered schema migrations of the cloud database; applied in order, each exactly once."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: the fleet, every event once (by event id), and the orders those events describe.
    """
    CREATE TABLE devices (
        tenant_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        online INTEGER NOT NULL DEFAULT 0,
        last_seen TEXT,
        last_health TEXT,
        PRIMARY KEY (tenant_id, device_id)
    );
    CREATE TABLE events (
        event_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        body TEXT NOT NULL,
        received_at TEXT NOT NULL
    );
    CREATE INDEX events_device_seq ON events(tenant_id, device_id, seq);
    CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        body TEXT NOT NULL,
        ticket_printed_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX orders_tenant_created ON orders(tenant_id, created_at);
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, one transaction each (autocommit connection); return the version.

    The applied check runs inside the write lock, so the ingest and the API opening the
    same file at once cannot both apply a migration.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    for number, script in enumerate(MIGRATIONS, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (number,)
            ).fetchone():
                conn.execute("COMMIT")
                continue
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations(version) VALUES (?)", (number,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return len(MIGRATIONS)
