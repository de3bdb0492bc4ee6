"""Rotating integration secrets onto the newest key (`voxeron cloud secrets rotate`).

Every stored secret is opened with any configured key and sealed again under the newest,
clear legacy secrets get sealed, and values already under the newest key are left alone,
so running it twice is harmless. Each row is rewritten in its own tenant transaction
under a row lock, so an integration saved meanwhile through the API is never overwritten
with an older document. A secret no key opens is left exactly as it is and reported:
dropping the old key is safe only once a rotation reports none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cloud.db import Database
from cloud.integration.action_store import SECRET_FIELD, read_stored, write_document
from cloud.integration.secret_box import SecretBox, SecretUndecryptable, is_sealed
from sync.structured_log import fields

log = logging.getLogger(__name__)


@dataclass
class RotationReport:
    """What a rotation did, row by row counted; `undecryptable` names (tenant, integration)."""

    resealed: int = 0
    sealed_legacy: int = 0
    current: int = 0
    undecryptable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.undecryptable


def _integrations(db: Database, tenant_id: str | None) -> list[tuple[str, str]]:
    if tenant_id is not None:
        with db.tenant(tenant_id) as tx:
            rows = tx.fetch_all("SELECT tenant_id, integration_id FROM integration_configs "
                                "WHERE tenant_id = :tenant_id ORDER BY integration_id")
    else:
        with db.fleet() as tx:
            rows = tx.fetch_all("SELECT tenant_id, integration_id FROM integration_configs "
                                "ORDER BY tenant_id, integration_id")
    return [(r["tenant_id"], r["integration_id"]) for r in rows]


def _rotate_one(db: Database, secrets: SecretBox, tenant_id: str, integration_id: str,
                report: RotationReport) -> None:
    with db.tenant(tenant_id) as tx:
        stored = read_stored(tx, integration_id, lock=True)
        if stored is None:  # deleted since it was listed
            return
        name = SECRET_FIELD[stored.kind]
        value = str(stored.document[name])
        if secrets.is_current(value):
            report.current += 1
            return
        try:
            resealed = secrets.reseal(value)
        except SecretUndecryptable:
            report.undecryptable.append((tenant_id, integration_id))
            log.error("integration secret undecryptable", extra=fields(
                alert="secret_undecryptable", tenant_id=tenant_id,
                integration_id=integration_id))
            return
        if is_sealed(value):
            report.resealed += 1
        else:
            report.sealed_legacy += 1
        write_document(tx, integration_id, {**stored.document, name: resealed})


def rotate_secrets(db: Database, secrets: SecretBox,
                   tenant_id: str | None = None) -> RotationReport:
    """Seal every integration secret of every tenant (or of `tenant_id`) under the newest
    key."""
    report = RotationReport()
    for tenant, integration_id in _integrations(db, tenant_id):
        _rotate_one(db, secrets, tenant, integration_id, report)
    log.info("integration secrets rotated", extra=fields(
        resealed=report.resealed, sealed_legacy=report.sealed_legacy, current=report.current,
        undecryptable=len(report.undecryptable), key_id=secrets.key_ids[0]))
    return report
