"""What the control-plane routes share: the database, the tenant CAs, the bootstrap token.

One `ControlPlane` per app, on `app.state.control`, resolved per request as a typed
dependency (no module-level state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from cloud.config import ALL_REGIONS, CloudConfig, Region
from cloud.control.tenant_ca import TenantCaStore
from cloud.db import Database, open_database
from cloud.integration.secret_box import SecretBox


@dataclass
class ControlPlane:
    """The control plane's resources; `close` releases the database."""

    db: Database
    cas: TenantCaStore
    bootstrap_ops_token: str | None
    # Seals integration secrets on write; None = this app cannot store them (tests of
    # other routes). `open` always loads the configured keys.
    secrets: SecretBox | None = None
    # Data-residency regions this deployment serves (CloudConfig.regions).
    regions: tuple[Region, ...] = ALL_REGIONS

    @classmethod
    def open(cls, cfg: CloudConfig) -> ControlPlane:
        db = open_database(
            cfg.control_database_url, app_role=cfg.database_app_role,
            app_password=(cfg.database_app_password.get_secret_value()
                          if cfg.database_app_password else None))
        token = cfg.bootstrap_ops_token.get_secret_value() if cfg.bootstrap_ops_token else None
        return cls(db=db, cas=TenantCaStore(cfg.tenant_ca_dir), bootstrap_ops_token=token,
                   secrets=SecretBox.from_config(cfg), regions=cfg.regions)

    def close(self) -> None:
        self.db.close()


def get_control(request: Request) -> ControlPlane:
    control: ControlPlane = request.app.state.control
    return control


def utc_now() -> datetime:
    """The request's time; a dependency so tests can pin it with dependency_overrides."""
    return datetime.now(UTC)


ControlDep = Annotated[ControlPlane, Depends(get_control)]
NowDep = Annotated[datetime, Depends(utc_now)]
