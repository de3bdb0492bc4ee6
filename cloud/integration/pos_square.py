"""POS write-back to Square (Orders API, `POST /v2/orders`), the only module that knows it.

The action's idempotency key is Square's `idempotency_key`, so a retry after a timeout
(when Square may already have created the order) returns that same order instead of a
second one. The request body is built once, when the action is created, and stored as the
action's payload: every retry sends byte-identical JSON, which Square requires of a
repeated key (a different body under the same key is refused, `IDEMPOTENCY_KEY_REUSED`).
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, SecretStr

from cloud.integration.delivery import Outcome, classify_status
from sync.contracts.actions import Action
from sync.contracts.order import Order, OrderLine

SQUARE_VERSION = "2025-01-23"


class SquareConfig(BaseModel):
    """A tenant's Square integration: where, as whom, for which location."""

    kind: Literal["square"] = "square"
    base_url: str = Field(pattern=r"^https?://", description="https://connect.squareup.com")
    access_token: SecretStr
    location_id: str = Field(min_length=1)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


def _line_note(line: OrderLine) -> str | None:
    parts = [line.size] if line.size else []
    parts += [f"{m.kind} {m.name}" for m in line.modifiers]
    parts += line.styles
    if line.notes:
        parts.append(line.notes)
    return ", ".join(p for p in parts if p)[:500] or None


def square_order_body(order: Order, location_id: str) -> dict[str, Any]:
    """Our order as Square's CreateOrder `order` object (without the idempotency key)."""
    return {
        "location_id": location_id,
        "reference_id": order.order_id[:40],
        "source": {"name": "Voxeron"},
        "line_items": [
            {"name": line.name, "quantity": str(line.quantity), "note": _line_note(line),
             "base_price_money": {"amount": line.unit_price_cents, "currency": order.currency}}
            for line in order.lines
        ],
    }


def _detail(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('detail')}" for e in errors) or response.text
    except ValueError:
        return response.text[:200]


class SquarePos:
    """Delivers `pos_write` actions to one tenant's Square account."""

    def __init__(self, config: SquareConfig, client: httpx.Client) -> None:
        self._config = config
        self._client = client

    def deliver(self, action: Action) -> Outcome:
        body = {"idempotency_key": action.key, "order": action.payload["order"]}
        try:
            response = self._client.post(
                f"{self._config.base_url.rstrip('/')}/v2/orders", json=body,
                timeout=self._config.timeout_s,
                headers={"Authorization":
                         f"Bearer {self._config.access_token.get_secret_value()}",
                         "Square-Version": SQUARE_VERSION})
        except httpx.TimeoutException as exc:
            return Outcome.failed("retryable", "pos.timeout", "timeout",
                                  f"Square did not answer in {self._config.timeout_s} s: {exc!r}")
        except httpx.TransportError as exc:
            return Outcome.failed("retryable", "pos.unreachable", "unavailable",
                                  f"Square unreachable: {exc!r}")
        failure = classify_status(response.status_code, "pos", _detail(response),
                                  response.headers.get("Retry-After"))
        if failure is not None:
            return failure
        try:
            square_order = response.json()["order"]
            return Outcome.delivered({"square_order_id": square_order["id"],
                                      "square_version": square_order.get("version"),
                                      "state": square_order.get("state")})
        except (ValueError, KeyError, TypeError):  # a retry with the same key is safe
            return Outcome.failed("retryable", "pos.bad_response", "integration",
                                  f"Square answered 2xx without an order: {response.text[:200]}")
