"""Configuration of the cloud process: one validated object, from VOXERON_CLOUD_* variables.

Defaults run the demo on one machine; a bad value stops `voxeron cloud run` with the key
and the reason (pydantic's ValidationError names both).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Region = Literal["eu", "uk", "us", "ap"]
"""Where a tenant's data lives; one production deployment (and database) per region."""
ALL_REGIONS: tuple[Region, ...] = get_args(Region)


def secret_key_problem(key: str) -> str | None:
    """What is wrong with a Fernet key (None if nothing): url-safe base64 of 32 bytes."""
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return "is not url-safe base64"
    if len(raw) != 32:
        return f"decodes to {len(raw)} bytes, a Fernet key has 32"
    return None


class CloudConfig(BaseSettings):
    """The cloud api process: its database, HTTP listener and MQTT ingest."""

    # Errors name the key and the reason but never echo the value: some values are secrets.
    model_config = SettingsConfigDict(env_prefix="VOXERON_CLOUD_", hide_input_in_errors=True)

    db_path: Path = Path("var/cloud/cloud.sqlite3")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    ingest_client_id: str = Field(
        default="voxeron-cloud-ingest", min_length=1,
        description="MQTT client id of ingest; its persistent session keeps events queued "
                    "while the cloud restarts",
    )
    ingest_clean_session: bool = Field(
        default=False, description="true drops the broker-side session (throwaway ingests)"
    )
    mqtt_protocol: Literal["3.1.1", "5"] = Field(
        default="3.1.1", description="MQTT version of ingest's connection (5 needs Mosquitto 2 "
                                     "or EMQX; the embedded amqtt broker speaks only 3.1.1)")
    ingest_share_group: str | None = Field(
        default=None, pattern=r"^[^/+#]+$",
        description="shared-subscription group: replicas in one group split the fleet's events "
                    "($share/<group>/...); each replica needs its own ingest_client_id",
    )
    mqtt_ca_file: str | None = Field(
        default=None, description="CA bundle that signed the broker's certificate (mqtts://)")
    mqtt_cert_file: str | None = Field(
        default=None, description="ingest's client certificate (PEM) for mutual TLS")
    mqtt_key_file: str | None = Field(
        default=None, description="private key of mqtt_cert_file (PEM)")
    tenant_ca_dir: Path = Field(
        default=Path("var/cloud/tenant-ca"),
        description="where per-tenant device CAs keep their key (0600) and certificate",
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys sealing integration secrets (POS tokens, webhook secrets) "
                    "in the database, comma-separated, newest first; every replica needs the "
                    "same list. Unset = the keys of secret_key_file")
    secret_key_file: Path | None = Field(
        default=None,
        description="used when secret_keys is unset: one key a line, newest first; created "
                    "(0600) with a fresh key on first start (single node, demo). "
                    "Unset = secret-keys next to db_path")
    database_url: str | None = Field(
        default=None, pattern=r"^(sqlite:///.+|postgres(ql)?://.+)$",
        description="control-plane database: sqlite:///path or postgresql://owner@host/db "
                    "(migrations run as that user; the app connects as database_app_role); "
                    "unset = sqlite:///<db_path>",
    )
    database_app_role: str = Field(
        default="voxeron_app", pattern=r"^[a-z_][a-z0-9_]{0,50}$",
        description="PostgreSQL: the non-owner role the app connects as (RLS applies to it)")
    database_app_password: SecretStr | None = Field(
        default=None, description="PostgreSQL: password of database_app_role")
    bootstrap_ops_token: SecretStr | None = Field(
        default=None, min_length=32,
        description="an ops bearer token accepted without a database row, so a fresh install "
                    "can create its first tenant; prefer `voxeron cloud token create --ops`")
    redis_url: str | None = Field(
        default=None, pattern=r"^rediss?://.+",
        description="hot cache (desired-state documents, routing decisions, rate-limit "
                    "counters); unset = no cache. Redis down: served from the database")
    session_secret: SecretStr | None = Field(
        default=None, min_length=32,
        description="signs dashboard session cookies; replicas behind one address need the "
                    "same one. Unset = a random key per process (sessions end on restart)")
    session_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 86400,
                               description="lifetime of an operator's dashboard session")
    health_history_days: int = Field(
        default=14, ge=1, le=366,
        description="days of device health reports the cloud keeps; ingest prunes older "
                    "ones at most hourly")

    regions: Annotated[tuple[Region, ...], NoDecode] = Field(
        default=ALL_REGIONS, min_length=1,
        description="data-residency regions this deployment serves, comma-separated "
                    "(e.g. eu,uk); creating a tenant of another region is refused")

    @property
    def control_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.db_path}"

    @property
    def secret_key_path(self) -> Path:
        """The key file used when secret_keys is unset (the cloud's data directory)."""
        return self.secret_key_file or self.db_path.parent / "secret-keys"

    @field_validator("secret_keys")
    @classmethod
    def _fernet_keys(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        keys = [k.strip() for k in v.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError("VOXERON_CLOUD_SECRET_KEYS is set but holds no key")
        for n, key in enumerate(keys, 1):
            problem = secret_key_problem(key)
            if problem:
                raise ValueError(f"VOXERON_CLOUD_SECRET_KEYS: key {n} of {len(keys)} {problem} "
                                 "(make one with `voxeron cloud secrets new-key`)")
        return v

    @field_validator("regions", mode="before")
    @classmethod
    def _comma_regions(cls, v: object) -> object:
        if isinstance(v, str):  # VOXERON_CLOUD_REGIONS=eu,uk
            return tuple(dict.fromkeys(r.strip() for r in v.split(",") if r.strip()))
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, v: str) -> str:
        if not v.startswith(("mqtt://", "mqtts://")):
            raise ValueError("mqtt_url must start with mqtt:// or mqtts://")
        return v

    @model_validator(mode="after")
    def _tls_files_need_mqtts(self) -> CloudConfig:
        tls_files = (self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)
        if any(tls_files) and not self.mqtt_url.startswith("mqtts://"):
            raise ValueError("mqtt_ca_file/mqtt_cert_file/mqtt_key_file need an mqtts:// mqtt_url")
        if self.mqtt_key_file and not self.mqtt_cert_file:
            raise ValueError("mqtt_key_file is set but mqtt_cert_file is not")
        return self
