"""Configuration of the box: one validated object per concern, from VOXERON_* variables.

Defaults run the demo on one machine. A bad value stops the process with the key and
the reason (pydantic's ValidationError names both).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BoxIdentity(BaseSettings):
    """Who this box is: tenant and device ids, and where its data lives."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_")

    tenant_id: str = "ten_01JDEM0000000000000000DEMO"
    device_id: str = "dev_01JDEM0000000000000000BOX1"
    data_dir: Path = Path("var/box")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "box.sqlite3"


class VoiceConfig(BaseSettings):
    """SIP user agent and speech settings of voxeron-voice."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_VOICE_")

    sip_host: str = "0.0.0.0"
    sip_port: int = Field(default=5060, ge=0, le=65535)
    rtp_host: str = "0.0.0.0"
    sip_users: list[str] = Field(default_factory=lambda: ["order", "voxeron"])
    max_calls: int = Field(default=2, ge=1)
    tenant_overlay: str = "demo_pizza"
    sector: str = "restaurant_orders"
    asr_threads: int = Field(default=2, ge=1)


class PrinterConfig(BaseSettings):
    """Where the kitchen printer is: tcp://host:9100 or serial:///dev/ttyUSB0?baudrate=19200."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_PRINTER_")

    url: str = "tcp://127.0.0.1:9100"
    name: str = "kitchen"
    poll_s: float = Field(default=0.2, gt=0)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not v.startswith(("tcp://", "serial://")):
            raise ValueError("printer url must start with tcp:// or serial://")
        return v


class SyncConfig(BaseSettings):
    """The box's MQTT link to the cloud."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_")

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    ack_timeout_s: float = Field(default=10.0, gt=0)
    health_interval_s: float = Field(default=30.0, gt=0)


class SetupConfig(BaseSettings):
    """The touchscreen setup UI (Litestar) on the box."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_SETUP_")

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
