"""Numbered schema migrations of the local store; applied in order, each exactly once."""

from __future__ import annotations

import sqlite3

from sync.sqlite_schema import apply_migrations

MIGRATIONS: tuple[str, ...] = (
    # 1: orders, their actions and the outbox, written together by order.submit.
    """
    CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        call_id TEXT NOT NULL,
        number INTEGER NOT NULL UNIQUE,
        status TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE actions (
        action_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL REFERENCES orders(order_id),
        kind TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX actions_pending ON actions(kind, status);
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        acked_at TEXT
    );
    CREATE INDEX outbox_unacked ON outbox(acked_at, seq);
    CREATE TABLE submissions (
        idempotency_key TEXT PRIMARY KEY,
        order_id TEXT NOT NULL REFERENCES orders(order_id)
    );
    """,
    # 2: the conversation, turn by turn, for the setup UI and warm handovers.
    """
    CREATE TABLE call_turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        at TEXT NOT NULL,
        speaker TEXT NOT NULL CHECK (speaker IN ('caller', 'agent')),
        text TEXT NOT NULL,
        latency_ms REAL
    );
    CREATE INDEX call_turns_call ON call_turns(call_id, id);
    """,
    # 3: table bookings (slot_start is the tenant's local time) and staff follow-ups that
    # handoff.transfer and callback.schedule record; the idempotency keys are UNIQUE so a
    # retried tool call can never book or promise twice.
    """
    CREATE TABLE reservations (
        reservation_id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        call_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        slot_start TEXT NOT NULL,
        party_size INTEGER NOT NULL CHECK (party_size >= 1),
        name TEXT NOT NULL,
        phone TEXT,
        status TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
        blueprint_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX reservations_slot ON reservations(tenant_id, slot_start, status);
    CREATE TABLE follow_ups (
        follow_up_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('transfer', 'callback')),
        tenant_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        call_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        phone TEXT,
        reason TEXT NOT NULL,
        summary TEXT NOT NULL,
        not_before TEXT,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
        created_at TEXT NOT NULL
    );
    CREATE INDEX follow_ups_pending ON follow_ups(status, created_at);
    """,
    # 4: slips: kitchen-printer jobs that belong to no order (warm handover summaries),
    # queued once per idempotency key and drained by the print agent after the tickets.
    """
    CREATE TABLE print_slips (
        slip_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        call_id TEXT,
        idempotency_key TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        lines TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'in_flight', 'succeeded')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX print_slips_pending ON print_slips(status, created_at);
    """,
)



def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file's schema up to date; returns the schema version."""
    return apply_migrations(conn, MIGRATIONS)
