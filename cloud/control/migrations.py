"""Numbered schema migrations of the cloud database; applied in order, each exactly once."""

from __future__ import annotations

import sqlite3

from sync.sqlite_schema import apply_migrations

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
    """Bring the file's schema up to date; returns the schema version."""
    return apply_migrations(conn, MIGRATIONS)
