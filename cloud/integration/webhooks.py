"""Outbound webhooks signed per the Standard Webhooks spec (standardwebhooks.com).

Headers: `webhook-id` (the action id: the same on every retry, so receivers dedupe),
`webhook-timestamp` (integer Unix seconds of this attempt) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">`, keyed with the base64 part of
the endpoint's `whsec_` secret). The body is the action's payload, `{type, timestamp,
data}`, serialised once here and signed exactly as sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

from cloud.integration.delivery import Outcome, classify_status
from sync.contracts.actions import Action

WEBHOOK_EVENTS = ("order.created", "order.cancelled", "order.superseded")


def new_secret() -> str:
    """A fresh endpoint secret in the spec's form: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one delivery."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


class WebhookConfig(BaseModel):
    """A tenant's webhook endpoint: where, with which secret, for which event types."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    events: list[str] = Field(default_factory=lambda: list(WEBHOOK_EVENTS))
    timeout_s: float = Field(default=10.0, gt=0, le=60)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        try:
            if not raw.startswith("whsec_") or len(_key(raw)) < 24:
                raise ValueError
        except ValueError:
            raise ValueError("secret must be whsec_ followed by base64 of 24-64 bytes") from None
        return v

    @field_validator("events")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(WEBHOOK_EVENTS))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {list(WEBHOOK_EVENTS)}")
        return v


def webhook_payload(event_type: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The spec's recommended body shape: type, timestamp, data."""
    return {"type": event_type, "timestamp": at.isoformat(), "data": data}


class WebhookSender:
    """Delivers `webhook` actions to one endpoint."""

    def __init__(self, config: WebhookConfig, client: httpx.Client) -> None:
        self._config = config
        self._client = client

    def deliver(self, action: Action, now: datetime) -> Outcome:
        body = json.dumps(action.payload, separators=(",", ":"), sort_keys=True).encode()
        ts = int(now.timestamp())
        headers = {"content-type": "application/json", "webhook-id": action.action_id,
                   "webhook-timestamp": str(ts),
                   "webhook-signature": sign(self._config.secret.get_secret_value(),
                                             action.action_id, ts, body)}
        try:
            response = self._client.post(self._config.url, content=body, headers=headers,
                                         timeout=self._config.timeout_s)
        except httpx.TimeoutException as exc:
            return Outcome.failed("retryable", "webhook.timeout", "timeout", repr(exc))
        except httpx.TransportError as exc:
            return Outcome.failed("retryable", "webhook.unreachable", "unavailable", repr(exc))
        failure = classify_status(response.status_code, "webhook", response.text[:200],
                                  response.headers.get("Retry-After"))
        return failure or Outcome.delivered({"status": response.status_code})
