"""Configuration of the box: one validated object per concern, from VOXERON_* variables.

Defaults run the demo on one machine. A bad value stops the process with the key and
the reason (pydantic's ValidationError names both).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from appliance.voice.sip_refer import staff_uri


class BoxIdentity(BaseSettings):
    """Who this box is: tenant and device ids, and where its data lives."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_")

    tenant_id: str = "ten_01JDEM0000000000000000DEMO"
    device_id: str = "dev_01JDEM0000000000000000BOX1"
    data_dir: Path = Path("var/box")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "box.sqlite3"


class WebCallConfig(BaseSettings):
    """The setup UI's WebRTC test call (docs: README "Test call from the touchscreen"):
    voxeron-voice answers offers on 127.0.0.1:port, forwarded there by voxeron-setup."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_TEST_CALL_")

    enabled: bool = True
    port: int = Field(default=8091, ge=1, le=65535)
    # Only the box's own browser may start one (like SIP, loopback by default): a test call
    # places a real order. True lets other machines' browsers (over HTTPS) do it too.
    remote: bool = False


class VoiceConfig(BaseSettings):
    """SIP user agent and speech settings of voxeron-voice."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_VOICE_")

    sip_host: str = "0.0.0.0"
    sip_port: int = Field(default=5060, ge=0, le=65535)
    rtp_host: str = "0.0.0.0"
    sip_users: list[str] = Field(default_factory=lambda: ["order", "voxeron"])
    max_calls: int = Field(default=2, ge=1)
    test_call: WebCallConfig = Field(default_factory=WebCallConfig)  # VOXERON_TEST_CALL_*
    tenant_overlay: str = "demo_pizza"
    sector: str = "restaurant_orders"
    # The runtime-policy layer (blueprints/policies/<name>.yaml, or a .yaml path): latency
    # budget, barge-in sensitivity, endpointing. Slow hardware may need a wider budget.
    runtime_policy: str = "default"
    asr_threads: int = Field(default=2, ge=1)
    # Speech models from appliance.voice.speech_models; ones shipped in parts are assembled
    # under models_dir (also where `voxeron models pull` puts them).
    asr_model: Literal["whisper-tiny.en", "whisper-base"] = "whisper-tiny.en"
    models_dir: Path = Path("var/box/models")
    # Vendor routing (appliance/voice/routing.py): Whisper runs in a worker process per engine
    # so a crash fails over instead of ending the call; decode while the caller speaks.
    asr_isolation: bool = True
    asr_speculation: bool = True
    asr_speculation_max_calls: int = Field(default=2, ge=0)  # more calls at once: final only
    # Inbound access (docs/telephony.md): trusted source networks call straight in; any
    # other source must pass digest auth as one of sip_auth_users, or is refused (403).
    sip_allow_from: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    sip_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    sip_auth_realm: str = "voxeron"
    sip_auth_algorithm: Literal["MD5", "SHA-256"] = "MD5"
    # Registration at the ATA/PBX: off unless sip_registrar (an IP address[:port]) is set.
    sip_registrar: str | None = None
    sip_register_user: str = "voxeron"
    sip_register_domain: str | None = None
    sip_register_auth_user: str | None = None
    sip_register_password: SecretStr = SecretStr("")
    sip_register_expires_s: int = Field(default=3600, ge=10, le=86400)
    # Human fallback (docs/telephony.md): REFER the caller to staff_sip_uri when set
    # (sip:user@IP[:port], no DNS names); else, or when that fails, promise a callback.
    staff_sip_uri: str | None = None
    transfer_timeout_s: float = Field(default=30.0, gt=0, le=300)
    callback_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # SIP transport and calls (docs/telephony.md): TCP listens on sip_port next to UDP;
    # past max_calls a call gets 486, or 302 to staff_sip_uri with overflow_to_staff.
    sip_tcp: bool = False
    overflow_to_staff: bool = False
    session_min_se_s: int = Field(default=90, ge=90, le=86400)
    hold_timeout_s: float = Field(default=300.0, gt=0, le=3600)

    @field_validator("sip_allow_from")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for cidr in v:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as err:
                raise ValueError(f"{cidr!r} is not an IP network such as 192.168.1.0/24") from err
        return v

    @field_validator("staff_sip_uri")
    @classmethod
    def _staff(cls, v: str | None) -> str | None:
        if v:
            staff_uri(v)
        return v or None

    @field_validator("overflow_to_staff")
    @classmethod
    def _overflow(cls, v: bool, info: ValidationInfo) -> bool:
        if v and not info.data.get("staff_sip_uri"):
            raise ValueError("overflow_to_staff needs staff_sip_uri (where busy calls go)")
        return v

    @field_validator("sip_registrar")
    @classmethod
    def _registrar(cls, v: str | None) -> str | None:
        if v:
            _split_hostport(v)
        return v or None

    @property
    def registrar_address(self) -> tuple[str, int] | None:
        """Where REGISTERs go, or None when registration is off."""
        return _split_hostport(self.sip_registrar) if self.sip_registrar else None


def _split_hostport(text: str) -> tuple[str, int]:
    """`192.168.1.2`, `192.168.1.2:5080` or `[fe80::1]:5060` -> (ip, port); no DNS names."""
    host, port = text.strip(), "5060"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError as err:
        raise ValueError(f"registrar {text!r} must be an IP address[:port] (no DNS names)") from err
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"registrar {text!r} has a bad port")
    return host, int(port)


class PrinterConfig(BaseSettings):
    """Where the kitchen printer is: tcp://host:9100 or serial:///dev/ttyUSB0?baudrate=19200."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_PRINTER_")

    url: str = "tcp://127.0.0.1:9100"
    name: str = "kitchen"
    poll_s: float = Field(default=0.2, gt=0)
    # A ticket that failed this many times while the printer said it was ready is dead
    # lettered (alert + ticket.failed); a printer that is not ready never counts.
    dead_letter_after: int = Field(default=6, ge=1)
    retry_base_s: float = Field(default=2.0, gt=0)
    retry_cap_s: float = Field(default=120.0, gt=0)

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
    # Desired state and reconciliation: up/reported at least this often, with day figures
    # for the last report_days UTC days.
    report_interval_s: float = Field(default=60.0, gt=0)
    report_days: int = Field(default=2, ge=1, le=31)
    # Disk upkeep: alert (alert=disk_low) below disk_low_bytes free on the data disk; acked
    # outbox rows older than outbox_retention_days are pruned (unacked rows never are).
    disk_low_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    outbox_retention_days: float = Field(default=7.0, gt=0)
    prune_interval_s: float = Field(default=3600.0, gt=0)


class SetupConfig(BaseSettings):
    """The touchscreen setup UI (Litestar) on the box."""

    model_config = SettingsConfigDict(env_prefix="VOXERON_SETUP_")

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    test_call: WebCallConfig = Field(default_factory=WebCallConfig)  # VOXERON_TEST_CALL_*
