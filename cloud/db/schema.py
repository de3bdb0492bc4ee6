"""Numbered migrations of the cloud database, one list per backend with the same numbers.

Each migration is a tuple of statements per dialect (never split on ';', so triggers and
functions stay whole). PostgreSQL text may name the application roles as `{app}` and
`{fleet}`; they come from configuration and are substituted as quoted identifiers.
Every table in `TENANT_TABLES` carries a `tenant_id` column and, on PostgreSQL, ENABLE +
FORCE ROW LEVEL SECURITY with the tenant policy (`_rls`). Snapshots of applied
migrations are never edited: a change is a new number.
"""

from __future__ import annotations

from dataclasses import dataclass

TENANT_TABLES: tuple[str, ...] = (
    "tenants", "enrolled_devices", "api_tokens", "audit_log",
    # 2: rollout, flags, routing
    "rollout_versions", "rollout_promotions", "rollout_deployments", "device_stages",
    "feature_flags", "routing_policies",
    # 3: integration plane
    "integration_configs", "integration_order_events", "integration_actions",
    "integration_action_events", "integration_breakers",
    # 4: usage and cost caps
    "tenant_usage", "cost_breakers",
)
"""Tables whose rows belong to one tenant; a tenant-scoped statement must bind :tenant_id."""

MIGRATIONS_TABLE = "cloud_schema_migrations"


@dataclass(frozen=True)
class Migration:
    """One schema step: its number, a name for people, and the statements per dialect."""

    number: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]


def _rls(table: str, privileges: str) -> tuple[str, ...]:
    """Tenant isolation of `table` on PostgreSQL: FORCE RLS, the tenant policy for the app
    role, the all-rows policy for the fleet role (entered only by SET LOCAL ROLE)."""
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {table}_tenant ON {table} TO {{app}} "
        "USING (tenant_id = current_setting('app.tenant_id', true)) "
        "WITH CHECK (tenant_id = current_setting('app.tenant_id', true))",
        f"CREATE POLICY {table}_fleet ON {table} TO {{fleet}} USING (true) WITH CHECK (true)",
        f"GRANT {privileges} ON {table} TO {{app}}, {{fleet}}",
    )


def _control_plane(ts: str, js: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE tenants (
            tenant_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            tier TEXT NOT NULL,
            region TEXT NOT NULL,
            quotas {js} NOT NULL,
            retention {js} NOT NULL,
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL
        )""",
        f"""CREATE TABLE enrolled_devices (
            tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
            device_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
            serial TEXT NOT NULL UNIQUE,
            fingerprint_sha256 TEXT NOT NULL,
            cert_pem TEXT NOT NULL,
            not_after {ts} NOT NULL,
            enrolled_at {ts} NOT NULL,
            revoked_at {ts},
            revoke_reason TEXT,
            PRIMARY KEY (tenant_id, device_id)
        )""",
        # tenant_id NULL: an ops token, visible only in the fleet scope.
        f"""CREATE TABLE api_tokens (
            token_id TEXT PRIMARY KEY,
            tenant_id TEXT REFERENCES tenants(tenant_id),
            name TEXT NOT NULL,
            scopes {js} NOT NULL,
            secret_sha256 TEXT NOT NULL UNIQUE,
            created_by TEXT NOT NULL,
            created_at {ts} NOT NULL,
            expires_at {ts},
            revoked_at {ts},
            last_used_at {ts}
        )""",
        "CREATE INDEX api_tokens_tenant ON api_tokens(tenant_id, created_at)",
        # tenant_id NULL: a fleet-level change (an ops token), visible only to ops.
        f"""CREATE TABLE audit_log (
            entry_id TEXT PRIMARY KEY,
            tenant_id TEXT,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            resource TEXT NOT NULL,
            before {js},
            after {js},
            at {ts} NOT NULL,
            request_id TEXT
        )""",
        "CREATE INDEX audit_log_tenant_at ON audit_log(tenant_id, at)",
    )


def _rollout(ts: str, js: str) -> tuple[str, ...]:
    """Blueprint/menu versions, their approvals and staged promotions, device stage labels,
    feature flags and routing policies (migration 2)."""
    return (
        f"""CREATE TABLE rollout_versions (
            tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
            version INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('draft', 'submitted', 'approved')),
            sector TEXT NOT NULL,
            base_overlay TEXT NOT NULL,
            overlay {js},
            menu {js},
            note TEXT NOT NULL,
            author TEXT NOT NULL,
            created_at {ts} NOT NULL,
            submitted_at {ts},
            approved_by TEXT,
            approved_at {ts},
            rolled_back_from INTEGER,
            PRIMARY KEY (tenant_id, version)
        )""",
        f"""CREATE TABLE rollout_promotions (
            tenant_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            stage TEXT NOT NULL CHECK (stage IN ('dev', 'staging', 'prod')),
            promoted_by TEXT NOT NULL,
            promoted_at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, version, stage),
            FOREIGN KEY (tenant_id, version) REFERENCES rollout_versions(tenant_id, version)
        )""",
        f"""CREATE TABLE rollout_deployments (
            tenant_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            device_id TEXT NOT NULL,
            stage TEXT NOT NULL,
            desired_version INTEGER NOT NULL,
            at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, device_id, desired_version)
        )""",
        "CREATE INDEX rollout_deployments_version ON rollout_deployments(tenant_id, version)",
        f"""CREATE TABLE device_stages (
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            stage TEXT CHECK (stage IN ('dev', 'staging', 'prod')),
            updated_by TEXT NOT NULL,
            updated_at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, device_id),
            FOREIGN KEY (tenant_id, device_id) REFERENCES enrolled_devices(tenant_id, device_id)
        )""",
        # device_id '' is the tenant-wide value; value NULL means unset (no DELETE grant).
        f"""CREATE TABLE feature_flags (
            tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
            device_id TEXT NOT NULL,
            flag TEXT NOT NULL,
            value INTEGER CHECK (value IN (0, 1)),
            updated_by TEXT NOT NULL,
            updated_at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, device_id, flag)
        )""",
        f"""CREATE TABLE routing_policies (
            tenant_id TEXT PRIMARY KEY REFERENCES tenants(tenant_id),
            policy {js} NOT NULL,
            updated_by TEXT NOT NULL,
            updated_at {ts} NOT NULL
        )""",
    )


_ROLLOUT_TABLES = ("rollout_versions", "rollout_promotions", "rollout_deployments",
                   "device_stages", "feature_flags", "routing_policies")


def _integration(ts: str, js: str) -> tuple[str, ...]:
    """The integration plane (migration 3): per-tenant POS/webhook configs, the order events
    actions are planned from (for replay), the actions, their append-only transition events,
    and one circuit breaker per tenant per integration. Booleans are INTEGER 0/1."""
    states = ("'pending', 'in_flight', 'succeeded', 'retry_scheduled', 'dead_lettered', "
              "'cancelled', 'superseded'")
    return (
        f"""CREATE TABLE integration_configs (
            tenant_id TEXT NOT NULL,
            integration_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('square', 'webhook')),
            config {js} NOT NULL,
            enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
            updated_by TEXT NOT NULL,
            updated_at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, integration_id)
        )""",
        f"""CREATE TABLE integration_order_events (
            event_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            order_id TEXT NOT NULL,
            replacement_order_id TEXT,
            device_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            body {js} NOT NULL,
            recorded_at {ts} NOT NULL
        )""",
        "CREATE INDEX integration_order_events_order ON integration_order_events"
        "(tenant_id, order_id, device_id, seq)",
        f"""CREATE TABLE integration_actions (
            action_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            order_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('pos_write', 'webhook')),
            integration_id TEXT NOT NULL,
            idem_key TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({states})),
            attempts INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            next_attempt_at {ts} NOT NULL,
            lease_until {ts},
            claim_token TEXT,
            payload {js} NOT NULL,
            result {js},
            last_error {js},
            version INTEGER NOT NULL,
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL,
            UNIQUE (tenant_id, idem_key)
        )""",
        "CREATE INDEX integration_actions_due ON integration_actions(state, next_attempt_at)",
        "CREATE INDEX integration_actions_lane ON integration_actions"
        "(tenant_id, integration_id, state, next_attempt_at)",
        "CREATE INDEX integration_actions_order ON integration_actions(tenant_id, order_id)",
        f"""CREATE TABLE integration_action_events (
            event_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            action_id TEXT NOT NULL REFERENCES integration_actions(action_id),
            seq INTEGER NOT NULL,
            transition TEXT NOT NULL,
            body {js} NOT NULL,
            at {ts} NOT NULL,
            UNIQUE (action_id, seq)
        )""",
        f"""CREATE TABLE integration_breakers (
            tenant_id TEXT NOT NULL,
            integration_id TEXT NOT NULL,
            mode TEXT NOT NULL CHECK (mode IN ('closed', 'open', 'half_open')),
            failures INTEGER NOT NULL,
            opened_at {ts},
            probe_in_flight INTEGER NOT NULL CHECK (probe_in_flight IN (0, 1)),
            updated_at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, integration_id)
        )""",
    )


_INTEGRATION_TABLES = ("integration_configs", "integration_order_events",
                       "integration_actions", "integration_breakers")


def _usage(ts: str, js: str) -> tuple[str, ...]:
    """Usage (migration 4): the latest running total each device reported per UTC day,
    provider and kind (a report replaces, never adds), and one cost-cap breaker per tenant
    holding the policy it replaced until the next day."""
    return (
        f"""CREATE TABLE tenant_usage (
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            day TEXT NOT NULL,
            provider TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('asr', 'tts', 'nlu')),
            seconds DOUBLE PRECISION NOT NULL,
            tokens BIGINT NOT NULL,
            est_cost_cents DOUBLE PRECISION NOT NULL,
            reported_at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, day, device_id, provider, kind)
        )""",
        f"""CREATE TABLE cost_breakers (
            tenant_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('closed', 'open')),
            day TEXT,
            previous_policy {js},
            opened_at {ts},
            updated_at {ts} NOT NULL
        )""",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "control plane: tenants, enrolled devices, API tokens, audit log",
        sqlite=(
            *_control_plane("TEXT", "TEXT"),
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN "
            "SELECT RAISE(ABORT, 'permission denied: audit_log is append-only'); END",
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN "
            "SELECT RAISE(ABORT, 'permission denied: audit_log is append-only'); END",
        ),
        postgresql=(
            *_control_plane("TIMESTAMPTZ", "JSONB"),
            *_rls("tenants", "SELECT, INSERT, UPDATE"),
            *_rls("enrolled_devices", "SELECT, INSERT, UPDATE"),
            *_rls("api_tokens", "SELECT, INSERT, UPDATE"),
            # Append-only: no UPDATE/DELETE grant, and a trigger for everyone else.
            *_rls("audit_log", "SELECT, INSERT"),
            """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
            END $$""",
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
        ),
    ),
    Migration(
        2, "rollout: blueprint/menu versions, promotions, device stages, flags, routing",
        sqlite=_rollout("TEXT", "TEXT"),
        postgresql=(
            *_rollout("TIMESTAMPTZ", "JSONB"),
            *(s for t in _ROLLOUT_TABLES for s in _rls(t, "SELECT, INSERT, UPDATE")),
        ),
    ),
    Migration(
        3, "integration plane: configs, order events, actions, action events, breakers",
        sqlite=(
            *_integration("TEXT", "TEXT"),
            "CREATE TRIGGER integration_action_events_no_update BEFORE UPDATE ON "
            "integration_action_events BEGIN SELECT RAISE(ABORT, "
            "'permission denied: integration_action_events is append-only'); END",
        ),
        postgresql=(
            *_integration("TIMESTAMPTZ", "JSONB"),
            *(s for t in _INTEGRATION_TABLES for s in _rls(t, "SELECT, INSERT, UPDATE")),
            # Every transition is an immutable event: no UPDATE grant.
            *_rls("integration_action_events", "SELECT, INSERT"),
        ),
    ),
    Migration(
        4, "usage: provider use per tenant, device and day; the cost-cap breaker",
        sqlite=_usage("TEXT", "TEXT"),
        postgresql=(
            *_usage("TIMESTAMPTZ", "JSONB"),
            *(s for t in ("tenant_usage", "cost_breakers") for s in _rls(t, "SELECT, INSERT, UPDATE")),
        ),
    ),
)


def _ingest(ts: str) -> tuple[str, ...]:
    """Ingest and edge state (migration 5), moved from the old per-node CloudDb file: every
    event once (by event id), the orders those events describe, the fleet as last heard of,
    desired-state versions, the last reported state, and commands with their outcomes.
    IF NOT EXISTS: a SQLite file written by the old CloudDb already has these tables.
    Bodies stay TEXT on both backends (the models' own JSON, read back byte for byte)."""
    return (
        f"""CREATE TABLE IF NOT EXISTS devices (
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            online INTEGER NOT NULL DEFAULT 0,
            last_seen {ts},
            last_health TEXT,
            PRIMARY KEY (tenant_id, device_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS events (
            event_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            received_at {ts} NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS events_device_seq ON events(tenant_id, device_id, seq)",
        f"""CREATE TABLE IF NOT EXISTS orders (
            order_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            number INTEGER NOT NULL,
            body TEXT NOT NULL,
            ticket_printed_at {ts},
            created_at {ts} NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS orders_tenant_created ON orders(tenant_id, created_at)",
        f"""CREATE TABLE IF NOT EXISTS desired_states (
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            body TEXT NOT NULL,
            created_at {ts} NOT NULL,
            published_at {ts},
            PRIMARY KEY (tenant_id, device_id, version)
        )""",
        f"""CREATE TABLE IF NOT EXISTS reported_states (
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            applied_version INTEGER NOT NULL,
            status TEXT NOT NULL,
            body TEXT NOT NULL,
            received_at {ts} NOT NULL,
            PRIMARY KEY (tenant_id, device_id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS device_commands (
            command_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            order_id TEXT,
            day TEXT,
            origin TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at {ts} NOT NULL,
            published_at {ts},
            outcome TEXT,
            outcome_reason TEXT,
            outcome_at {ts}
        )""",
        "CREATE INDEX IF NOT EXISTS device_commands_open "
        "ON device_commands(tenant_id, device_id, outcome)",
        "CREATE INDEX IF NOT EXISTS device_commands_unpublished "
        "ON device_commands(outcome, published_at)",
    )


INGEST_TABLES: tuple[str, ...] = (
    "devices", "events", "orders", "desired_states", "reported_states", "device_commands")
TENANT_TABLES = (*TENANT_TABLES, *INGEST_TABLES)

MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        5, "ingest and edge state: devices, events, orders, desired/reported state, commands",
        # Timestamps are ISO-8601 UTC text on both backends (sortable; what CloudDb wrote).
        sqlite=_ingest("TEXT"),
        postgresql=(
            *_ingest("TEXT"),
            *(s for t in INGEST_TABLES for s in _rls(t, "SELECT, INSERT, UPDATE")),
        ),
    ),
)


def _device_health() -> tuple[str, ...]:
    """Health history (migration 6): every report a box sent, once per (device, `at`), so
    ops can see flapping, a filling outbox or a shrinking disk over the day. The figures
    charts read are columns; the report itself (without its usage list, which the usage
    tables keep) is the body. Timestamps are ISO-8601 UTC text, as in migration 5."""
    return (
        """CREATE TABLE device_health (
            tenant_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            outbox_depth INTEGER NOT NULL,
            disk_free_bytes BIGINT,
            printer TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (tenant_id, device_id, at)
        )""",
        "CREATE INDEX device_health_tenant_at ON device_health(tenant_id, at)",
    )


TENANT_TABLES = (*TENANT_TABLES, "device_health")

MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        6, "device health history: every health report, pruned after health_history_days",
        sqlite=_device_health(),
        # No UPDATE: a report is stored once; DELETE only for the retention prune.
        postgresql=(*_device_health(), *_rls("device_health", "SELECT, INSERT, DELETE")),
    ),
)


_ACTION_KINDS_V7 = "'pos_write', 'pos_cancel', 'webhook'"


def _pos_cancel_kind_sqlite() -> tuple[str, ...]:
    """SQLite cannot alter a CHECK: rebuild integration_actions (create, copy, drop,
    rename). Foreign keys stay on inside the migration's transaction, so the action events
    (whose rows reference the actions) step aside into a temporary copy while the old table
    is dropped and come back, checked, once the new one has its name."""
    states = ("'pending', 'in_flight', 'succeeded', 'retry_scheduled', 'dead_lettered', "
              "'cancelled', 'superseded'")
    columns = ("action_id, tenant_id, order_id, kind, integration_id, idem_key, state, "
               "attempts, max_attempts, next_attempt_at, lease_until, claim_token, payload, "
               "result, last_error, version, created_at, updated_at")
    return (
        f"""CREATE TABLE integration_actions_v7 (
            action_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            order_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ({_ACTION_KINDS_V7})),
            integration_id TEXT NOT NULL,
            idem_key TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({states})),
            attempts INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            next_attempt_at TEXT NOT NULL,
            lease_until TEXT,
            claim_token TEXT,
            payload TEXT NOT NULL,
            result TEXT,
            last_error TEXT,
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (tenant_id, idem_key)
        )""",
        f"INSERT INTO integration_actions_v7 ({columns}) "
        f"SELECT {columns} FROM integration_actions",
        "CREATE TEMP TABLE integration_action_events_v7 AS "
        "SELECT * FROM integration_action_events",
        "DELETE FROM integration_action_events",
        "DROP TABLE integration_actions",
        "ALTER TABLE integration_actions_v7 RENAME TO integration_actions",
        "INSERT INTO integration_action_events SELECT * FROM integration_action_events_v7",
        "DROP TABLE integration_action_events_v7",
        "CREATE INDEX integration_actions_due ON integration_actions(state, next_attempt_at)",
        "CREATE INDEX integration_actions_lane ON integration_actions"
        "(tenant_id, integration_id, state, next_attempt_at)",
        "CREATE INDEX integration_actions_order ON integration_actions(tenant_id, order_id)",
    )


MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        7, "integration actions: the pos_cancel kind (cancel an order already on the POS)",
        sqlite=_pos_cancel_kind_sqlite(),
        postgresql=(
            "ALTER TABLE integration_actions DROP CONSTRAINT integration_actions_kind_check",
            "ALTER TABLE integration_actions ADD CONSTRAINT integration_actions_kind_check "
            f"CHECK (kind IN ({_ACTION_KINDS_V7}))",
        ),
    ),
)


RETENTION_FLOOR_DAYS = 32
"""Retention never deletes box events or action history younger than this, whatever a
tenant's retention says: a box reports day figures for up to 31 UTC days (its
`report_days` maximum) and may be asked to resync any of them, and idempotent ingest and
planning need the event ids of those days to recognise what comes again. Migration 8 holds
the number in the database function too; changing it takes a new migration."""

_RETENTION_TABLES = ("events", "integration_order_events", "integration_actions",
                     "integration_action_events")
_TERMINAL_STATES = "'succeeded', 'dead_lettered', 'cancelled', 'superseded'"
_OPEN_STATES = "'pending', 'in_flight', 'retry_scheduled'"


def _retention_prune_function() -> str:
    """`voxeron_retention_prune`: the app role's only way to delete from the append-only
    tables it has no DELETE grant on. It runs as the schema owner (SECURITY DEFINER) but
    only for the tenant of the calling transaction, never younger than the floor (checked
    against the database clock), never an open action or the order events an open action
    may be replayed from, and never the audit log. At most `p_batch` rows per kind a call."""
    return f"""CREATE FUNCTION voxeron_retention_prune(
            p_tenant TEXT, p_events_before TIMESTAMPTZ, p_actions_before TIMESTAMPTZ,
            p_batch INTEGER)
        RETURNS TABLE (deleted_events BIGINT, deleted_order_events BIGINT,
                       deleted_actions BIGINT, deleted_action_events BIGINT)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        DECLARE
            floor_at CONSTANT TIMESTAMPTZ := now() - make_interval(days => {RETENTION_FLOOR_DAYS});
            ev_cut TIMESTAMPTZ := LEAST(p_events_before, floor_at);
            ac_cut TIMESTAMPTZ := LEAST(p_actions_before, floor_at);
            ev_text TEXT := to_char(ev_cut AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"+00:00"');
            doomed TEXT[];
        BEGIN
            IF p_tenant IS NULL OR p_tenant IS DISTINCT FROM current_setting('app.tenant_id', true)
            THEN
                RAISE EXCEPTION 'retention prunes only the tenant of the calling transaction'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF p_batch IS NULL OR p_batch < 1 OR ev_cut IS NULL OR ac_cut IS NULL THEN
                RAISE EXCEPTION 'retention needs two cut-off times and a batch size >= 1'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            DELETE FROM events WHERE event_id IN (
                SELECT e.event_id FROM events e WHERE e.tenant_id = p_tenant
                AND e.received_at < ev_text LIMIT p_batch);
            GET DIAGNOSTICS deleted_events = ROW_COUNT;
            DELETE FROM integration_order_events WHERE event_id IN (
                SELECT o.event_id FROM integration_order_events o WHERE o.tenant_id = p_tenant
                AND o.recorded_at < ev_cut AND NOT EXISTS (
                    SELECT 1 FROM integration_actions a WHERE a.tenant_id = p_tenant
                    AND a.order_id IN (o.order_id, o.replacement_order_id)
                    AND a.state IN ({_OPEN_STATES}))
                LIMIT p_batch);
            GET DIAGNOSTICS deleted_order_events = ROW_COUNT;
            SELECT COALESCE(array_agg(d.action_id), '{{}}') INTO doomed FROM (
                SELECT a.action_id FROM integration_actions a WHERE a.tenant_id = p_tenant
                AND a.state IN ({_TERMINAL_STATES}) AND a.updated_at < ac_cut
                ORDER BY a.updated_at LIMIT p_batch FOR UPDATE) d;
            DELETE FROM integration_action_events
                WHERE tenant_id = p_tenant AND action_id = ANY(doomed);
            GET DIAGNOSTICS deleted_action_events = ROW_COUNT;
            DELETE FROM integration_actions WHERE tenant_id = p_tenant AND action_id = ANY(doomed);
            GET DIAGNOSTICS deleted_actions = ROW_COUNT;
            RETURN NEXT;
        END $$"""


_RETENTION_INDEXES = (
    "CREATE INDEX events_tenant_received ON events(tenant_id, received_at)",
    "CREATE INDEX integration_order_events_recorded ON integration_order_events"
    "(tenant_id, recorded_at)",
)

MIGRATIONS = (
    *MIGRATIONS,
    Migration(
        8, "retention: indexes by age, and the narrowly granted prune function (PostgreSQL)",
        # SQLite has no roles: the single-node app deletes directly (cloud.control.retention)
        # under the same rules; its only append-only guard, audit_log's triggers, stays.
        sqlite=_RETENTION_INDEXES,
        postgresql=(
            *_RETENTION_INDEXES,
            _retention_prune_function(),
            "REVOKE ALL ON FUNCTION voxeron_retention_prune(TEXT, TIMESTAMPTZ, TIMESTAMPTZ, "
            "INTEGER) FROM PUBLIC",
            "GRANT EXECUTE ON FUNCTION voxeron_retention_prune(TEXT, TIMESTAMPTZ, TIMESTAMPTZ, "
            "INTEGER) TO {app}",
            # FORCE RLS binds the owner too: without these a non-superuser owner's function
            # would see, and so delete, nothing. The owner could lift FORCE anyway.
            *(f"CREATE POLICY {t}_retention ON {t} TO CURRENT_USER USING (true)"
              for t in _RETENTION_TABLES),
        ),
    ),
)
