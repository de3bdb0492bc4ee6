"""Ingest and edge state on the cloud's one database layer (SQLite or PostgreSQL).

Ingest is idempotent by event id: the event row and its effect on the order are written
in one transaction, so an event seen twice changes nothing the second time, also when
two replicas race for it (the primary key serialises them). Reads and writes for a known
tenant go through `db.tenant(id)` (RLS on PostgreSQL); ingest batches, the fleet
dashboard and id-only look-ups use the explicit fleet scope.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, computed_field

from cloud.config import CloudConfig
from cloud.control.cache import HotCache
from cloud.control.event_store import IngestOutcome, set_cancelled_sql, store_events
from cloud.control.health_history import (
    DEFAULT_LIMIT,
    DeviceHealthHistory,
    append_health,
    device_known,
    prune_tenant,
    read_history,
    tenants_with_history_before,
)
from cloud.db import Database, Transaction, open_database
from sync.contracts.events import (
    EventEnvelope,
)
from sync.contracts.messages import Command, DesiredState, DeviceStatus, Health, ReportedState
from sync.contracts.order import Order


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


class DeviceRecord(BaseModel):
    """A box as the cloud last heard of it."""

    tenant_id: str
    device_id: str
    online: bool
    last_seen: datetime | None
    last_health: Health | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def outbox_depth(self) -> int | None:
        """Unsynced events on the box at its last health report (None before the first)."""
        return self.last_health.outbox_depth if self.last_health else None


class OrderRecord(BaseModel):
    """An order as ingested, with what the cloud knows about its kitchen ticket."""

    order_id: str
    tenant_id: str
    device_id: str
    number: int
    ticket_printed_at: datetime | None
    created_at: datetime
    order: Order

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ticket_printed(self) -> bool:
        return self.ticket_printed_at is not None


_ORDER_COLUMNS = "order_id, tenant_id, device_id, number, ticket_printed_at, created_at, body"


def _order_record(row: dict[str, object]) -> OrderRecord:
    printed, created = row["ticket_printed_at"], str(row["created_at"])
    return OrderRecord(
        order_id=str(row["order_id"]), tenant_id=str(row["tenant_id"]),
        device_id=str(row["device_id"]), number=int(str(row["number"])),
        ticket_printed_at=datetime.fromisoformat(str(printed)) if printed else None,
        created_at=datetime.fromisoformat(created),
        order=Order.model_validate_json(str(row["body"])),
    )


class CloudDb:
    """Typed access to ingest and edge state; several instances may share the database."""

    def __init__(self, path: Path | str | None = None, *, database: Database | None = None,
                 cache: HotCache | None = None) -> None:
        """`CloudDb(path)`: the single-node SQLite file (the demo); `CloudDb.open(url)`
        for any backend. `cache` is the Redis hot cache whose desired-state entry of a
        device `add_desired` drops (CloudDb closes it); None = no cache."""
        if database is None:
            if path is None:
                raise ValueError("CloudDb needs a SQLite path or an opened database")
            database = open_database(f"sqlite:///{Path(path)}")
        self.path = Path(path) if path is not None else None
        self.db = database
        self.cache = cache if cache is not None else HotCache(None)

    @classmethod
    def open(cls, url: str, *, app_role: str = "voxeron_app", app_password: str | None = None,
             pool_size: int = 4, cache: HotCache | None = None) -> CloudDb:
        """The database at `url` (sqlite:///path or postgresql://owner@host/db), migrated."""
        path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
        db = cls(path, database=open_database(url, app_role=app_role,
                                               app_password=app_password,
                                               pool_size=pool_size), cache=cache)
        return db

    @classmethod
    def for_config(cls, cfg: CloudConfig) -> CloudDb:
        """The cloud's database as configured: `database_url`, else sqlite:///<db_path>;
        with the Redis hot cache when `redis_url` is set."""
        secret = cfg.database_app_password
        return cls.open(cfg.control_database_url, app_role=cfg.database_app_role,
                        app_password=secret.get_secret_value() if secret else None,
                        cache=HotCache(cfg.redis_url))

    def close(self) -> None:
        self.cache.close()
        self.db.close()

    def _read(self, tenant_id: str | None = None,
              ) -> contextlib.AbstractContextManager[Transaction]:
        """A read-only transaction that never waits for a writer (the control plane reads
        edge state while it holds its own write transaction on the same SQLite file)."""
        if tenant_id is not None:
            return self.db.tenant(tenant_id, readonly=True)
        return self.db.fleet(readonly=True)

    def ingest_event(self, event: EventEnvelope, now: datetime) -> IngestOutcome:
        """Store an event once and apply it to its order; 'duplicate' if it was already here."""
        return self.ingest_events([event], now)[0]

    def ingest_events(self, events: Sequence[EventEnvelope], now: datetime) -> list[IngestOutcome]:
        """Group commit: `ingest_event` for each, in the given order, in one transaction.

        One fsync for the batch instead of one per event; all or nothing, so the caller
        acks only after this returns and a crash before it loses no acked event.
        """
        with self.db.fleet() as tx:
            return store_events(tx, events, now)

    def record_status(self, status: DeviceStatus, now: datetime) -> None:
        """Online/offline from the retained status topic; offline (the will) is not 'seen'."""
        with self.db.tenant(status.tenant_id) as tx:
            tx.execute(
                "INSERT INTO devices(tenant_id, device_id, online, last_seen) "
                "VALUES (:tenant_id, :device_id, :online, :seen) "
                "ON CONFLICT(tenant_id, device_id) DO UPDATE SET online = excluded.online, "
                "last_seen = COALESCE(excluded.last_seen, devices.last_seen)",
                {"device_id": status.device_id, "online": int(status.online),
                 "seen": _iso(now) if status.online else None},
            )

    def record_health(self, health: Health, now: datetime) -> bool:
        """The device's latest report, and the report appended to its history, in one
        transaction; False if the history holds this report already (a resend)."""
        with self.db.tenant(health.tenant_id) as tx:
            tx.execute(
                "INSERT INTO devices(tenant_id, device_id, online, last_seen, last_health) "
                "VALUES (:tenant_id, :device_id, 1, :now, :health) "
                "ON CONFLICT(tenant_id, device_id) DO UPDATE SET "
                "last_seen = excluded.last_seen, last_health = excluded.last_health",
                {"device_id": health.device_id, "now": _iso(now),
                 "health": health.model_dump_json()},
            )
            return append_health(tx, health, now)

    def health_history(self, tenant_id: str, device_id: str, since: datetime | None = None,
                       limit: int = DEFAULT_LIMIT) -> DeviceHealthHistory | None:
        """The device's health reports, newest first; None if the tenant has no such device
        (neither enrolled nor heard from), so another tenant's device id stays unseen."""
        with self._read(tenant_id) as tx:
            if not device_known(tx, device_id):
                return None
            reports = read_history(tx, device_id, since, limit)
        return DeviceHealthHistory(tenant_id=tenant_id, device_id=device_id, since=since,
                                   limit=limit, reports=reports)

    def prune_health(self, before: datetime) -> dict[str, int]:
        """Delete health reports older than `before`, one tenant scope at a time; the
        number deleted per tenant that had any."""
        with self._read() as tx:
            tenant_ids = tenants_with_history_before(tx, before)
        deleted: dict[str, int] = {}
        for tenant_id in tenant_ids:
            with self.db.tenant(tenant_id) as tx:
                deleted[tenant_id] = prune_tenant(tx, before)
        return deleted

    def devices(self, tenant_id: str | None = None) -> list[DeviceRecord]:
        where = "WHERE tenant_id = :tenant_id " if tenant_id is not None else ""
        with self._read(tenant_id) as tx:
            rows = tx.fetch_all(
                "SELECT tenant_id, device_id, online, last_seen, last_health FROM devices "
                f"{where}ORDER BY tenant_id, device_id")
        return [
            DeviceRecord(
                tenant_id=r["tenant_id"], device_id=r["device_id"], online=bool(r["online"]),
                last_seen=datetime.fromisoformat(r["last_seen"]) if r["last_seen"] else None,
                last_health=(Health.model_validate_json(r["last_health"])
                             if r["last_health"] else None),
            )
            for r in rows
        ]

    def orders(self, tenant_id: str | None = None, limit: int = 50) -> list[OrderRecord]:
        """Newest first; every tenant when `tenant_id` is None (the fleet dashboard)."""
        where = "WHERE tenant_id = :tenant_id " if tenant_id is not None else ""
        with self._read(tenant_id) as tx:
            rows = tx.fetch_all(
                f"SELECT {_ORDER_COLUMNS} FROM orders {where}"
                "ORDER BY created_at DESC, number DESC LIMIT :limit", {"limit": limit})
        return [_order_record(r) for r in rows]

    def order(self, order_id: str) -> OrderRecord | None:
        with self._read() as tx:
            row = tx.fetch_one(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = :order_id",
                               {"order_id": order_id})
        return _order_record(row) if row else None

    # Desired state, reported state and commands (edge-state surface).

    def add_desired(self, tenant_id: str, device_id: str,
                    build: Callable[[int, Transaction], DesiredState],
                    now: datetime) -> DesiredState:
        """Store the device's next desired version atomically: `build` gets the number and
        the transaction, so what it reads (the tenant's policy) is read under the lock,
        then drop the device's hot-cache entry: every path that changes desired state
        (raw PUT, promotion, flag, routing, breaker) comes through here.

        Concurrent callers for one device serialise on a per-device lock (`serialize_on`:
        an advisory lock on PostgreSQL, where READ COMMITTED would let two read the same
        MAX and one fail on the unique key; SQLite's BEGIN IMMEDIATE already does it), so
        each gets the next number and none fails. A lock rather than a retry: `build` runs
        once and the versions come out in the order the callers got the lock. The cache
        entry is dropped after COMMIT, so a read that misses loads the new version.
        """
        with self.db.tenant(tenant_id) as tx:
            tx.serialize_on(f"desired:{tenant_id}:{device_id}")
            row = tx.fetch_one(
                "SELECT COALESCE(MAX(version), 0) + 1 AS next FROM desired_states "
                "WHERE tenant_id = :tenant_id AND device_id = :device_id",
                {"device_id": device_id})
            version = int(row["next"]) if row else 1
            desired = build(version, tx)
            tx.execute(
                "INSERT INTO desired_states(tenant_id, device_id, version, body, created_at, "
                "published_at) VALUES (:tenant_id, :device_id, :version, :body, :now, NULL)",
                {"device_id": device_id, "version": version, "body": desired.model_dump_json(),
                 "now": _iso(now)})
        self.cache.forget_desired(tenant_id, device_id)
        return desired

    def desired_state(self, tenant_id: str, device_id: str) -> DesiredState | None:
        with self._read(tenant_id) as tx:
            row = tx.fetch_one(
                "SELECT body FROM desired_states WHERE tenant_id = :tenant_id "
                "AND device_id = :device_id ORDER BY version DESC LIMIT 1",
                {"device_id": device_id})
        return DesiredState.model_validate_json(row["body"]) if row else None

    def unpublished_desired(self) -> list[DesiredState]:
        """The newest desired version of each device, where it has not been published."""
        with self._read() as tx:
            rows = tx.fetch_all(
                "SELECT d.body FROM desired_states d WHERE d.published_at IS NULL AND d.version = "
                "(SELECT MAX(version) FROM desired_states m WHERE m.tenant_id = d.tenant_id "
                "AND m.device_id = d.device_id)")
        return [DesiredState.model_validate_json(r["body"]) for r in rows]

    def mark_desired_published(self, desired: DesiredState, now: datetime) -> None:
        with self.db.tenant(desired.tenant_id) as tx:
            tx.execute("UPDATE desired_states SET published_at = :now WHERE tenant_id = "
                       ":tenant_id AND device_id = :device_id AND version = :version",
                       {"now": _iso(now), "device_id": desired.device_id,
                        "version": desired.version})

    def record_reported(self, reported: ReportedState, now: datetime) -> None:
        """Keep the device's latest report and the command outcomes it carries."""
        with self.db.tenant(reported.tenant_id) as tx:
            tx.execute(
                "INSERT INTO reported_states(tenant_id, device_id, applied_version, status, "
                "body, received_at) VALUES (:tenant_id, :device_id, :applied, :status, :body, "
                ":now) ON CONFLICT(tenant_id, device_id) DO UPDATE SET applied_version = "
                "excluded.applied_version, status = excluded.status, body = excluded.body, "
                "received_at = excluded.received_at",
                {"device_id": reported.device_id, "applied": reported.applied_version,
                 "status": reported.status, "body": reported.model_dump_json(),
                 "now": _iso(now)})
            for c in reported.commands:
                tx.execute(
                    "UPDATE device_commands SET outcome = :outcome, outcome_reason = :reason, "
                    "outcome_at = :at WHERE command_id = :command_id AND tenant_id = :tenant_id "
                    "AND device_id = :device_id AND outcome IS NULL",
                    {"outcome": c.status, "reason": c.reason, "at": _iso(c.at),
                     "command_id": c.command_id, "device_id": reported.device_id})

    def reported_states(self, tenant_id: str | None = None,
                        device_id: str | None = None) -> list[ReportedState]:
        where = ["tenant_id = :tenant_id"] if tenant_id is not None else []
        where += ["device_id = :device_id"] if device_id is not None else []
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        params = {"device_id": device_id} if device_id is not None else {}
        with self._read(tenant_id) as tx:
            rows = tx.fetch_all(
                f"SELECT body FROM reported_states {clause}ORDER BY tenant_id, device_id",
                params)
        return [ReportedState.model_validate_json(r["body"]) for r in rows]

    def desired_versions(self, tenant_id: str | None = None,
                         ) -> list[tuple[str, str, int, int | None, str | None]]:
        """(tenant, device, newest desired version, applied version, report status)."""
        where = "WHERE d.tenant_id = :tenant_id " if tenant_id is not None else ""
        with self._read(tenant_id) as tx:
            rows = tx.fetch_all(
                "SELECT d.tenant_id AS t, d.device_id AS d, MAX(d.version) AS v, "
                "MAX(r.applied_version) AS a, MAX(r.status) AS s FROM desired_states d "
                "LEFT JOIN reported_states r ON r.tenant_id = d.tenant_id "
                f"AND r.device_id = d.device_id {where}GROUP BY d.tenant_id, d.device_id "
                "ORDER BY d.tenant_id, d.device_id")
        return [(r["t"], r["d"], int(r["v"]), None if r["a"] is None else int(r["a"]), r["s"])
                for r in rows]

    def add_command(self, command: Command, origin: str, now: datetime,
                    cancel_order: bool = False) -> None:
        """Store a command to publish; with `cancel_order` the cloud's record of the order
        says cancelled in the same transaction (the cloud is authoritative)."""
        with self.db.tenant(command.tenant_id) as tx:
            tx.execute(
                "INSERT INTO device_commands(command_id, tenant_id, device_id, kind, order_id, "
                "day, origin, body, created_at) VALUES (:command_id, :tenant_id, :device_id, "
                ":kind, :order_id, :day, :origin, :body, :now)",
                {"command_id": command.command_id, "device_id": command.device_id,
                 "kind": command.kind, "order_id": command.order_id,
                 "day": command.day.isoformat() if command.day else None, "origin": origin,
                 "body": command.model_dump_json(), "now": _iso(now)})
            if cancel_order:
                tx.execute(set_cancelled_sql(tx), {"order_id": command.order_id})

    def commands_to_publish(self, resend_before: datetime) -> list[Command]:
        """Unpublished commands, and published ones still without an outcome since before
        `resend_before` (the device may never have got them; it applies each id once)."""
        with self._read() as tx:
            rows = tx.fetch_all(
                "SELECT body FROM device_commands WHERE outcome IS NULL AND "
                "(published_at IS NULL OR published_at < :before) ORDER BY created_at",
                {"before": _iso(resend_before)})
        return [Command.model_validate_json(r["body"]) for r in rows]

    def mark_command_published(self, command_id: str, now: datetime) -> None:
        with self.db.fleet() as tx:
            tx.execute("UPDATE device_commands SET published_at = :now "
                       "WHERE command_id = :command_id",
                       {"now": _iso(now), "command_id": command_id})

    def device_commands(self, tenant_id: str, device_id: str, open_only: bool = False,
                        ) -> list[tuple[Command, str | None, str | None]]:
        """(command, outcome, outcome reason), oldest first."""
        only_open = "AND outcome IS NULL " if open_only else ""
        with self._read(tenant_id) as tx:
            rows = tx.fetch_all(
                "SELECT body, outcome, outcome_reason FROM device_commands WHERE tenant_id = "
                f":tenant_id AND device_id = :device_id {only_open}ORDER BY created_at",
                {"device_id": device_id})
        return [(Command.model_validate_json(r["body"]), r["outcome"], r["outcome_reason"])
                for r in rows]

    def day_orders(self, tenant_id: str, device_id: str, day: date,
                   ) -> list[tuple[str, str, bool]]:
        """(order id, status, ticket printed) of a device's orders created on a UTC day."""
        with self._read(tenant_id) as tx:
            status = ("body::jsonb ->> 'status'" if tx.dialect == "postgresql"
                      else "json_extract(body, '$.status')")
            rows = tx.fetch_all(
                f"SELECT order_id, {status} AS status, ticket_printed_at IS NOT NULL AS printed "
                "FROM orders WHERE tenant_id = :tenant_id AND device_id = :device_id "
                "AND created_at >= :start AND created_at < :end",
                {"device_id": device_id, "start": day.isoformat(),
                 "end": (day + timedelta(days=1)).isoformat()})
        return [(r["order_id"], r["status"], bool(r["printed"])) for r in rows]
