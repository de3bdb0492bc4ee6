"""POS write-back to Square (Orders API: `POST /v2/orders` to create, `PUT /v2/orders/{id}`
to cancel), the only module that knows it.

The action's idempotency key is Square's `idempotency_key`, so a retry after a timeout
(when Square may already have created the order) returns that same order instead of a
second one. The request body is built once, when the action is created, and stored as the
action's payload: every retry sends byte-identical JSON, which Square requires of a
repeated key (a different body under the same key is refused, `IDEMPOTENCY_KEY_REUSED`).
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class CancelTarget:
    """The Square order a cancel undoes, as its create's answer described it."""

    square_order_id: str
    location_id: str
    version: int | None


class SquarePos:
    """Delivers `pos_write` (CreateOrder) and `pos_cancel` (UpdateOrder) actions to one
    tenant's Square account."""

    def __init__(self, config: SquareConfig, client: httpx.Client) -> None:
        self._config = config
        self._client = client

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              ) -> httpx.Response | Outcome:
        """The 2xx response, or the failure Outcome a transport error or status means."""
        try:
            response = self._client.request(
                method, f"{self._config.base_url.rstrip('/')}{path}", json=body,
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
        return failure if failure is not None else response

    def deliver(self, action: Action) -> Outcome:
        """CreateOrder with the action's key and stored body (a retry returns the first order)."""
        answer = self._call("POST", "/v2/orders",
                            {"idempotency_key": action.key, "order": action.payload["order"]})
        if isinstance(answer, Outcome):
            return answer
        return _order_outcome(answer, {})

    def cancel(self, action: Action, target: CancelTarget) -> Outcome:
        """UpdateOrder to CANCELED at the version the create returned, keyed by the action.

        A retry sends the same key and body, so Square answers the first cancel again.
        VERSION_MISMATCH means someone changed the order on the POS since: read it, and
        cancel the version it is at now under a key naming that version (or stop if it is
        already cancelled)."""
        version = target.version
        if version is not None:
            answer = self._update(action.key, target, version)
            if not _is_version_mismatch(answer):
                return answer
        current = self._call("GET", f"/v2/orders/{target.square_order_id}")
        if isinstance(current, Outcome):
            return current
        try:
            order = current.json()["order"]
            state, version = order["state"], int(order["version"])
        except (ValueError, KeyError, TypeError):
            return Outcome.failed("retryable", "pos.bad_response", "integration",
                                  f"Square answered 2xx without an order: {current.text[:200]}")
        if state == "CANCELED":
            return Outcome.delivered({"square_order_id": target.square_order_id,
                                      "square_version": version, "state": state,
                                      "already_cancelled": True})
        return self._update(f"{action.key}.v{version}", target, version)

    def _update(self, key: str, target: CancelTarget, version: int) -> Outcome:
        answer = self._call("PUT", f"/v2/orders/{target.square_order_id}", {
            "idempotency_key": key,
            "order": {"location_id": target.location_id, "version": version,
                      "state": "CANCELED"}})
        if isinstance(answer, Outcome):
            return answer
        return _order_outcome(answer, {"cancelled_version": version})


def _is_version_mismatch(outcome: Outcome) -> bool:
    return (outcome.error is not None and outcome.verdict == "permanent"
            and "VERSION_MISMATCH" in outcome.error.message)


def _order_outcome(response: httpx.Response, extra: dict[str, Any]) -> Outcome:
    try:
        square_order = response.json()["order"]
        return Outcome.delivered({"square_order_id": square_order["id"],
                                  "square_version": square_order.get("version"),
                                  "state": square_order.get("state"), **extra})
    except (ValueError, KeyError, TypeError):  # a retry with the same key is safe
        return Outcome.failed("retryable", "pos.bad_response", "integration",
                              f"Square answered 2xx without an order: {response.text[:200]}")
