"""Actions, their events, breakers and integration configs in the cloud database.

Every function takes an open `Transaction` in the tenant's scope (the claim loop's lane
listing is the one fleet-scope read). An action row changes only together with the
event that records the transition, in the same transaction, and only if nobody changed
it since it was read (`version` is the optimistic lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud.db import Row, Transaction, json_value
from cloud.integration.breaker import Breaker
from cloud.integration.pos_square import SquareConfig
from cloud.integration.secret_box import SecretBox
from cloud.integration.webhooks import WebhookConfig
from sync.contracts.actions import Action, ActionEvent
from sync.contracts.errors import ErrorEnvelope

IntegrationConfig = SquareConfig | WebhookConfig


class ActionChanged(Exception):
    """The action changed between reading and writing it (another worker or operator)."""


class ActionNotFound(LookupError):
    """No action with this id in this tenant."""


def lock_clause(tx: Transaction, skip_locked: bool = False) -> str:
    """Row locks on PostgreSQL; on SQLite the transaction (BEGIN IMMEDIATE) is the lock."""
    if tx.dialect != "postgresql":
        return ""
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


def action_from_row(row: Row) -> Action:
    error = json_value(row["last_error"]) if row["last_error"] is not None else None
    return Action(
        action_id=row["action_id"], tenant_id=row["tenant_id"], order_id=row["order_id"],
        kind=row["kind"], integration_id=row["integration_id"], key=row["idem_key"],
        state=row["state"], attempts=row["attempts"], max_attempts=row["max_attempts"],
        next_attempt_at=row["next_attempt_at"], payload=json_value(row["payload"]),
        result=json_value(row["result"]) if row["result"] is not None else None,
        last_error=ErrorEnvelope.model_validate(error) if error else None,
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"])


def _insert_event(tx: Transaction, event: ActionEvent) -> None:
    tx.execute(
        "INSERT INTO integration_action_events (event_id, tenant_id, action_id, seq, "
        "transition, body, at) VALUES (:event_id, :tenant_id, :action_id, :seq, :transition, "
        ":body, :at)",
        {"event_id": event.event_id, "action_id": event.action_id, "seq": event.seq,
         "transition": event.transition, "body": event.model_dump(mode="json"), "at": event.at})


def insert_action(tx: Transaction, action: Action, event: ActionEvent) -> bool:
    """Store a new action and its create event; False (nothing written) if its key exists."""
    count = tx.execute(
        "INSERT INTO integration_actions (action_id, tenant_id, order_id, kind, integration_id, "
        "idem_key, state, attempts, max_attempts, next_attempt_at, payload, version, "
        "created_at, updated_at) VALUES (:action_id, :tenant_id, :order_id, :kind, "
        ":integration_id, :key, :state, :attempts, :max_attempts, :next_attempt_at, :payload, "
        ":version, :created_at, :updated_at) ON CONFLICT (tenant_id, idem_key) DO NOTHING",
        {"action_id": action.action_id, "order_id": action.order_id, "kind": action.kind,
         "integration_id": action.integration_id, "key": action.key, "state": action.state,
         "attempts": action.attempts, "max_attempts": action.max_attempts,
         "next_attempt_at": action.next_attempt_at, "payload": action.payload,
         "version": action.version, "created_at": action.created_at,
         "updated_at": action.updated_at})
    if count == 0:
        return False
    _insert_event(tx, event)
    ensure_breaker(tx, action.integration_id, action.created_at)
    return True


def save_transition(tx: Transaction, before: Action, after: Action, event: ActionEvent, *,
                    lease_until: Any = None, claim_token: str | None = None) -> None:
    """Write `after` over `before` with its event; ActionChanged if the row moved meanwhile.
    The lease and claim token are set by a claim and cleared by every other transition."""
    count = tx.execute(
        "UPDATE integration_actions SET state = :state, attempts = :attempts, "
        "max_attempts = :max_attempts, next_attempt_at = :next_attempt_at, result = :result, "
        "last_error = :last_error, version = :version, updated_at = :updated_at, "
        "lease_until = :lease_until, claim_token = :claim_token "
        "WHERE tenant_id = :tenant_id AND action_id = :action_id AND version = :old_version",
        {"state": after.state, "attempts": after.attempts, "max_attempts": after.max_attempts,
         "next_attempt_at": after.next_attempt_at, "result": after.result,
         "last_error": after.last_error.model_dump(mode="json") if after.last_error else None,
         "version": after.version, "updated_at": after.updated_at,
         "lease_until": lease_until, "claim_token": claim_token,
         "action_id": before.action_id, "old_version": before.version})
    if count != 1:
        raise ActionChanged(f"action {before.action_id} changed since version {before.version}")
    _insert_event(tx, event)


def read_action(tx: Transaction, action_id: str, *, lock: bool = False) -> Row | None:
    return tx.fetch_one(
        "SELECT * FROM integration_actions WHERE tenant_id = :tenant_id AND action_id = :id"
        + (lock_clause(tx) if lock else ""), {"id": action_id})


def get_action(tx: Transaction, action_id: str, *, lock: bool = False) -> Action:
    row = read_action(tx, action_id, lock=lock)
    if row is None:
        raise ActionNotFound(action_id)
    return action_from_row(row)


def action_events(tx: Transaction, action_id: str) -> list[ActionEvent]:
    rows = tx.fetch_all(
        "SELECT body FROM integration_action_events WHERE tenant_id = :tenant_id "
        "AND action_id = :id ORDER BY seq", {"id": action_id})
    return [ActionEvent.model_validate(json_value(r["body"])) for r in rows]


def list_actions(tx: Transaction, *, state: str | None = None, order_id: str | None = None,
                 limit: int = 100) -> list[Action]:
    where = "".join([" AND state = :state" if state else "",
                     " AND order_id = :order_id" if order_id else ""])
    rows = tx.fetch_all(
        "SELECT * FROM integration_actions WHERE tenant_id = :tenant_id" + where
        + " ORDER BY created_at DESC, action_id DESC LIMIT :limit",
        {"limit": limit, **({"state": state} if state else {}),
         **({"order_id": order_id} if order_id else {})})
    return [action_from_row(r) for r in rows]


def ensure_breaker(tx: Transaction, integration_id: str, now: Any) -> None:
    tx.execute(
        "INSERT INTO integration_breakers (tenant_id, integration_id, mode, failures, "
        "probe_in_flight, updated_at) VALUES (:tenant_id, :integration_id, 'closed', 0, 0, :now) "
        "ON CONFLICT (tenant_id, integration_id) DO NOTHING",
        {"integration_id": integration_id, "now": now})


def _breaker(row: Row) -> Breaker:
    return Breaker(tenant_id=row["tenant_id"], integration_id=row["integration_id"],
                   mode=row["mode"], failures=row["failures"], opened_at=row["opened_at"],
                   probe_in_flight=bool(row["probe_in_flight"]))


def read_breaker(tx: Transaction, integration_id: str, *, lock: str = "") -> Breaker | None:
    """The lane's breaker; `lock` is a `lock_clause` (SKIP LOCKED: None if another holds it)."""
    row = tx.fetch_one(
        "SELECT * FROM integration_breakers WHERE tenant_id = :tenant_id "
        "AND integration_id = :integration_id" + lock, {"integration_id": integration_id})
    return _breaker(row) if row else None


def write_breaker(tx: Transaction, breaker: Breaker, now: Any) -> None:
    tx.execute(
        "UPDATE integration_breakers SET mode = :mode, failures = :failures, "
        "opened_at = :opened_at, probe_in_flight = :probe, updated_at = :now "
        "WHERE tenant_id = :tenant_id AND integration_id = :integration_id",
        {"mode": breaker.mode, "failures": breaker.failures, "opened_at": breaker.opened_at,
         "probe": int(breaker.probe_in_flight), "now": now,
         "integration_id": breaker.integration_id})


def list_breakers(tx: Transaction) -> list[Breaker]:
    rows = tx.fetch_all("SELECT * FROM integration_breakers WHERE tenant_id = :tenant_id "
                        "ORDER BY integration_id")
    return [_breaker(r) for r in rows]


SECRET_FIELD = {"square": "access_token", "webhook": "secret"}


@dataclass(frozen=True)
class StoredConfig:
    """An integration row as stored: its document keeps the secret sealed (views, rotation)."""

    kind: str
    document: dict[str, Any]
    enabled: bool


def parse_config(kind: str, raw: dict[str, Any], secrets: SecretBox) -> IntegrationConfig:
    """The stored document as a config with its secret opened (a clear legacy secret is
    read as is); SecretUndecryptable if no configured key opens it."""
    field = SECRET_FIELD[kind]
    opened = {**raw, field: secrets.unseal(str(raw[field]))}
    return (SquareConfig.model_validate(opened) if kind == "square"
            else WebhookConfig.model_validate(opened))


def config_document(config: IntegrationConfig, secrets: SecretBox) -> dict[str, Any]:
    """The config as stored: its secret sealed, so a dump of the database does not leak it."""
    doc = config.model_dump(mode="json")
    secret = (config.access_token if isinstance(config, SquareConfig) else config.secret)
    doc[SECRET_FIELD[config.kind]] = secrets.seal(secret.get_secret_value())
    return doc


def read_stored(tx: Transaction, integration_id: str, *, lock: bool = False,
                ) -> StoredConfig | None:
    """An integration's row without opening its secret (needs no key)."""
    row = tx.fetch_one(
        "SELECT kind, config, enabled FROM integration_configs WHERE tenant_id = :tenant_id "
        "AND integration_id = :integration_id" + (lock_clause(tx) if lock else ""),
        {"integration_id": integration_id})
    if row is None:
        return None
    return StoredConfig(row["kind"], json_value(row["config"]), bool(row["enabled"]))


def read_config(tx: Transaction, integration_id: str, secrets: SecretBox,
                ) -> tuple[IntegrationConfig, bool] | None:
    """An integration's config, secret opened, and whether it is enabled."""
    stored = read_stored(tx, integration_id)
    if stored is None:
        return None
    return parse_config(stored.kind, stored.document, secrets), stored.enabled


def write_document(tx: Transaction, integration_id: str, document: dict[str, Any]) -> None:
    """Replace a stored document (rotation: the same config, resealed)."""
    tx.execute("UPDATE integration_configs SET config = :config WHERE tenant_id = :tenant_id "
               "AND integration_id = :integration_id",
               {"config": document, "integration_id": integration_id})


def enabled_configs(tx: Transaction) -> list[Row]:
    return tx.fetch_all(
        "SELECT integration_id, kind, config FROM integration_configs "
        "WHERE tenant_id = :tenant_id AND enabled = 1 ORDER BY integration_id")
