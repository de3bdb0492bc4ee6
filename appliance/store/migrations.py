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
    # 5: print durability. Tickets and slips keep their failures and next attempt time
    # (backoff survives a restart), the printer's cut count read just before the bytes went
    # out (the exactly-once commit point), whether a retry may duplicate a ticket that came
    # out (a printer without a counter) and a header mark; slips gain the statuses
    # printing and dead_lettered (a table rebuild: SQLite cannot alter a CHECK). Platform
    # commands are applied once per command id, and the edge records the printer's condition.
    """
    ALTER TABLE actions ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE actions ADD COLUMN next_attempt_at TEXT;
    ALTER TABLE actions ADD COLUMN cuts_before INTEGER;
    ALTER TABLE actions ADD COLUMN mark TEXT;
    ALTER TABLE actions ADD COLUMN may_have_printed INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE print_slips_v5 (
        slip_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        call_id TEXT,
        idempotency_key TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        lines TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
            ('pending', 'in_flight', 'printing', 'succeeded', 'dead_lettered')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        cuts_before INTEGER,
        may_have_printed INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO print_slips_v5(slip_id, kind, call_id, idempotency_key, title, lines, status,
        attempts, last_error, created_at, updated_at)
        SELECT slip_id, kind, call_id, idempotency_key, title, lines, status, attempts,
        last_error, created_at, updated_at FROM print_slips;
    DROP TABLE print_slips;
    ALTER TABLE print_slips_v5 RENAME TO print_slips;
    CREATE INDEX print_slips_pending ON print_slips(status, created_at);
    CREATE TABLE applied_commands (
        command_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('cancel', 'reprint', 'supersede')),
        order_id TEXT NOT NULL REFERENCES orders(order_id),
        action_id TEXT,
        replacement_order_id TEXT,
        applied_at TEXT NOT NULL
    );
    CREATE TABLE printer_state (
        printer TEXT PRIMARY KEY,
        condition TEXT NOT NULL,
        detail TEXT,
        changed_at TEXT NOT NULL
    )
    """,
    # 6: desired state from the cloud (every applied version kept; the highest is in
    # force), rejected versions with their error, and one outcome per cloud command (its
    # id is the key, so a command delivered twice is applied once); the outbox index by
    # creation time serves day resync, pruning and the oldest-unacked figure.
    """
    CREATE TABLE desired_state (
        version INTEGER PRIMARY KEY CHECK (version >= 1),
        body TEXT NOT NULL,
        blueprint_hash TEXT,
        applied_at TEXT NOT NULL
    );
    CREATE TABLE desired_rejections (
        version INTEGER PRIMARY KEY CHECK (version >= 1),
        error TEXT NOT NULL,
        rejected_at TEXT NOT NULL
    );
    CREATE TABLE command_outcomes (
        command_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        order_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('applied', 'duplicate', 'rejected')),
        reason TEXT,
        at TEXT NOT NULL,
        reported_at TEXT
    );
    CREATE INDEX command_outcomes_unreported ON command_outcomes(reported_at, at);
    CREATE INDEX outbox_created ON outbox(created_at)
    """,
    # 7: one row per call session: which speech/NLU providers routing chose (and why) and
    # every mid-call failover, for the setup UI and for tuning the routing table.
    """
    CREATE TABLE call_sessions (
        session_id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        routing TEXT NOT NULL,
        failovers TEXT NOT NULL DEFAULT '[]',
        started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX call_sessions_started ON call_sessions(started_at);
    """,
    # 8: each call's provider use (audio seconds, tokens, estimated cost per provider and
    # kind), summed per UTC day into the health report for the cloud's cost tracking.
    """
    ALTER TABLE call_sessions ADD COLUMN usage TEXT NOT NULL DEFAULT '[]'
    """,
)



def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file's schema up to date; returns the schema version."""
    return apply_migrations(conn, MIGRATIONS)
