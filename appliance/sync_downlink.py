"""The cloud's side of the box: down/desired and down/commands in, up/reported out.

A desired state is validated (composed with the box's sector and policy) before it is
written, and written in one transaction, so an invalid one leaves the old one in force.
A command is applied once per command id; its outcome is kept in the store and reported
until a report carrying it has been accepted by the broker. Malformed payloads are
logged and dropped: they carry nothing the box could apply or answer. Like the ack
handler, the paho callbacks only enqueue; `step` does the work on the sync loop.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from appliance.config import BoxIdentity, SyncConfig
from appliance.desired_blueprint import DesiredComposer, DesiredInvalid
from appliance.store import LocalStore, reconciliation
from appliance.store import desired_state as desired_rows
from appliance.store.call_sessions import day_usage
from sync.contracts.messages import Command, CommandOutcome, DesiredState, ReportedState
from sync.mqtt_link import MqttError, MqttLink
from sync.structured_log import fields, log_context
from sync.topics import DeviceTopics

log = logging.getLogger(__name__)

# The print agent's printer condition in Health's terms.
_PRINTER: dict[str, Literal["ok", "offline", "paper_out", "cover_open", "unknown"]] = {
    "ready": "ok", "offline": "offline", "paper_out": "paper_out", "cover_open": "cover_open"}

_Kind = Literal["desired", "command"]


class _StoreResult(Protocol):
    """What the store's command methods return (applied | duplicate | rejected + reason)."""

    @property
    def outcome(self) -> str: ...

    @property
    def reason(self) -> str | None: ...


class BoxDownlink:
    """Applies what the cloud sends and reports what is in force; driven by `step`."""

    def __init__(self, store: LocalStore, link: MqttLink, identity: BoxIdentity,
                 cfg: SyncConfig, wake: threading.Event,
                 composer: DesiredComposer | None = None) -> None:
        self._store, self._link, self._cfg, self._wake = store, link, cfg, wake
        self._ids = (identity.tenant_id, identity.device_id)
        self._topics = DeviceTopics(identity.tenant_id, identity.device_id)
        self._composer = composer or DesiredComposer()
        self._inbox: queue.SimpleQueue[tuple[_Kind, bytes]] = queue.SimpleQueue()
        self._report_due = True
        self._last_report: float | None = None
        self._last_prune: float | None = None
        link.subscribe(self._topics.desired, lambda _t, p: self._put("desired", p), qos=1)
        link.subscribe(self._topics.commands, lambda _t, p: self._put("command", p), qos=1)

    # Runs on paho's network thread: hand over and return.
    def _put(self, kind: _Kind, payload: bytes) -> None:
        self._inbox.put((kind, payload))
        self._wake.set()

    def step(self, connected: bool, now: float) -> None:
        """Apply what arrived, prune when due, report when due (and connected)."""
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "desired":
                self._on_desired(payload)
            else:
                self._on_command(payload)
        if self._last_prune is None or now - self._last_prune >= self._cfg.prune_interval_s:
            self.prune(datetime.now(UTC))
            self._last_prune = now
        if not connected:
            self._report_due = True  # say what is in force as soon as we are back
        elif self._report_due or self._last_report is None or \
                now - self._last_report >= self._cfg.report_interval_s:
            self._report(now)

    # -- desired state ------------------------------------------------------------------

    def _on_desired(self, payload: bytes) -> None:
        if not payload:
            return  # a cleared retained message
        try:
            desired = DesiredState.model_validate_json(payload)
        except ValidationError as exc:
            log.error("dropping malformed desired state", extra=fields(
                error=str(exc)[:300], head=payload[:80].decode("utf-8", "replace")))
            return
        if (desired.tenant_id, desired.device_id) != self._ids:
            log.error("dropping desired state for another device", extra=fields(
                version=desired.version, for_device=desired.device_id))
            return
        self._report_due = True
        with self._store.transaction() as conn:
            seen = desired_rows.highest_seen(conn)
        if desired.version <= seen:
            log.info("desired state already seen; ignored", extra=fields(
                version=desired.version, highest_seen=seen))
            return
        now = datetime.now(UTC)
        try:
            blueprint_hash = self._composer.blueprint_hash(desired)
        except DesiredInvalid as exc:
            with self._store.transaction() as conn:
                verdict = desired_rows.reject(conn, desired.version, exc.envelope, now)
            log.error("desired state rejected; the previous one stays in force", extra=fields(
                version=desired.version, verdict=verdict, error=exc.envelope.message))
            return
        with self._store.transaction() as conn:
            verdict = desired_rows.apply(conn, desired, blueprint_hash, now)
        self._last_prune = None  # a shorter transcript retention applies at once, not in an hour
        log.info("desired state %s", verdict, extra=fields(
            version=desired.version, blueprint_hash=blueprint_hash,
            answer_calls=desired.answer_calls, flags=desired.flags))

    # -- commands -----------------------------------------------------------------------

    def _on_command(self, payload: bytes) -> None:
        try:
            command = Command.model_validate_json(payload)
        except ValidationError as exc:
            log.error("dropping malformed command", extra=fields(
                error=str(exc)[:300], head=payload[:80].decode("utf-8", "replace")))
            return
        if (command.tenant_id, command.device_id) != self._ids:
            log.error("dropping command for another device", extra=fields(
                command_id=command.command_id, for_device=command.device_id))
            return
        with log_context(order_id=command.order_id):
            self._apply_command(command)

    def _apply_command(self, command: Command) -> None:
        self._report_due = True
        with self._store.transaction() as conn:
            prior = desired_rows.outcome(conn, command.command_id)
            if prior is not None:
                desired_rows.unreport(conn, command.command_id)
        if prior is not None:
            log.info("command seen before; reporting its outcome again", extra=fields(
                command_id=command.command_id, status=prior.status))
            return
        now = datetime.now(UTC)
        try:
            if command.kind == "resync":
                result = self._resync(command, now)
            else:
                result = self._order_command(command, now)
        except Exception:  # e.g. SQLite busy: nothing recorded, the cloud sends it again
            log.exception("command failed; leaving it to the cloud's resend",
                          extra=fields(command_id=command.command_id, kind=command.kind))
            return
        level = logging.INFO if result.status != "rejected" else logging.WARNING
        log.log(level, "command %s", result.status, extra=fields(
            command_id=command.command_id, kind=command.kind, reason=result.reason))

    def _resync(self, command: Command, now: datetime) -> CommandOutcome:
        """Clear the acks of a day and record the outcome in the same transaction."""
        assert command.day is not None  # Command validates it
        with self._store.transaction() as conn:
            count = reconciliation.resync_day(conn, command.day)
            if count == 0 and reconciliation.events_on(conn, command.day) == 0:
                result = _outcome(command, "rejected", now,
                                  f"no outbox events held for {command.day} (none, or pruned)")
            else:
                result = _outcome(command, "applied", now, f"{count} events queued again")
            desired_rows.record_outcome(conn, result, None)
        return result

    def _order_command(self, command: Command, now: datetime) -> CommandOutcome:
        """Cancel, reprint or supersede through the store, which keys them by command id."""
        assert command.order_id is not None  # Command validates it
        store = self._store
        done: _StoreResult
        if command.kind == "cancel":
            done = store.cancel_order(command.order_id, command.command_id, command.reason, now)
        elif command.kind == "reprint":
            done = store.reprint_ticket(command.order_id, command.command_id, now)
        else:
            assert command.replacement is not None
            done = store.supersede_order(command.order_id, command.replacement,
                                         command.command_id, now)
        status: Literal["applied", "duplicate", "rejected"] = (
            "applied" if done.outcome == "applied"
            else "duplicate" if done.outcome == "duplicate" else "rejected")
        result = _outcome(command, status, now, done.reason)
        with store.transaction() as conn:
            desired_rows.record_outcome(conn, result, command.order_id)
        return result

    # -- reporting and upkeep -----------------------------------------------------------

    def reported_state(self, at: datetime) -> ReportedState:
        """What is in force now, with day figures and outcomes the cloud has not seen."""
        with self._store.transaction() as conn:
            force = desired_rows.in_force(conn)
            rejection = desired_rows.latest_rejection(conn)
            days = [reconciliation.day_summary(conn, d)
                    for d in reconciliation.recent_days(at, self._cfg.report_days)]
            outcomes = desired_rows.unreported_outcomes(conn)
        return ReportedState(
            tenant_id=self._ids[0], device_id=self._ids[1], at=at,
            applied_version=force.desired.version if force else 0,
            status="rejected" if rejection else "applied",
            rejected_version=rejection.version if rejection else None,
            error=rejection.error if rejection else None,
            blueprint_hash=force.blueprint_hash if force else None,
            days=days, commands=outcomes,
        )

    def _report(self, now: float) -> None:
        at = datetime.now(UTC)
        reported = self.reported_state(at)
        try:
            self._link.publish(self._topics.reported, reported, qos=1,
                               timeout=self._cfg.ack_timeout_s)
        except MqttError as exc:
            log.warning("reported-state publish failed: %s", exc)
            return
        if reported.commands:
            with self._store.transaction() as conn:
                desired_rows.mark_reported(conn, [c.command_id for c in reported.commands], at)
        self._report_due = False
        self._last_report = now
        log.info("reported state sent", extra=fields(
            applied_version=reported.applied_version, status=reported.status,
            commands=len(reported.commands)))

    def prune(self, now: datetime) -> int:
        """Delete acked outbox rows past the retention, and call turns past the tenant's
        `transcripts_days`; returns how many outbox rows went."""
        cutoff = now - timedelta(days=self._cfg.outbox_retention_days)
        with self._store.transaction() as conn:
            count = reconciliation.prune_acked(conn, cutoff)
        if count:
            log.info("pruned acked outbox rows", extra=fields(rows=count, before=cutoff.isoformat()))
        turns, turn_cutoff = self._store.prune_turns(now)
        if turns and turn_cutoff is not None:
            log.info("pruned call turns past the tenant's retention", extra=fields(
                rows=turns, before=turn_cutoff.isoformat(), reason="transcripts_days"))
        return count

    def health_figures(self, at: datetime) -> dict[str, Any]:
        """Disk, outbox and print-queue figures for Health; logs alert=disk_low on every
        report while free space is under the threshold."""
        free = shutil.disk_usage(self._store.path.parent).free
        with self._store.transaction() as conn:
            oldest = reconciliation.oldest_unacked_age_s(conn, at)
            usage = day_usage(conn, at.astimezone(UTC).date())  # the cloud's cost tracking
        alerts = []
        if free < self._cfg.disk_low_bytes:
            alerts.append("disk_low")
            log.warning("disk space low", extra=fields(
                alert="disk_low", disk_free_bytes=free, threshold_bytes=self._cfg.disk_low_bytes))
        queue_now = self._store.print_queue_summary()
        condition = queue_now.printer.condition if queue_now.printer else "unknown"
        return {
            "disk_free_bytes": free, "outbox_oldest_age_s": oldest, "alerts": alerts,
            "printer": _PRINTER.get(condition, "unknown"),
            "print_pending": queue_now.tickets_pending + queue_now.tickets_printing
            + queue_now.tickets_failing,
            "print_dead_lettered": queue_now.tickets_dead_lettered
            + queue_now.slips_dead_lettered,
            "usage": usage,
        }


def _outcome(command: Command, status: Literal["applied", "duplicate", "rejected"],
             at: datetime, reason: str | None) -> CommandOutcome:
    return CommandOutcome(command_id=command.command_id, kind=command.kind, status=status,
                          reason=reason, at=at)
