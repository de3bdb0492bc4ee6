"""Executes the dialog's typed tool calls against the local store.

Inputs are validated before the call and outputs after it; every failure leaves as an
ErrorEnvelope inside a ToolResult, never as an exception.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime

from pydantic import BaseModel, Field, ValidationError

from appliance.store import LocalStore
from blueprints.model import Blueprint
from sync.contracts.errors import ErrorEnvelope
from sync.contracts.order import OrderLine
from sync.contracts.tools import ToolCall, ToolResult
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)


class SubmitArgs(BaseModel):
    lines: list[OrderLine] = Field(min_length=1)


class SubmitResult(BaseModel):
    order_id: str
    number: int
    total_cents: int
    created: bool


class OrderTools:
    """The box-local tool set of the order dialog (order.submit for the skeleton)."""

    def __init__(self, store: LocalStore, blueprint: Blueprint, tenant_id: str, device_id: str) -> None:
        self.store, self.blueprint = store, blueprint
        self.tenant_id, self.device_id = tenant_id, device_id

    def run(self, call: ToolCall, caller: str | None, now: datetime) -> ToolResult:
        if call.tool not in self.blueprint.tools_allowed:
            return self._error(call, "tool.not_allowed", "validation",
                               "That is not something I can do on this line.")
        if call.tool != "order.submit":
            return self._error(call, "tool.unknown", "validation", "That is not available yet.")
        try:
            args = SubmitArgs.model_validate(call.args)
        except ValidationError as exc:
            log.warning("order.submit rejected", extra=fields(errors=exc.errors(include_url=False)))
            return self._error(call, "order.invalid", "validation", "Something in that order is not right.")
        if not call.idempotency_key:
            return self._error(call, "order.no_idempotency_key", "validation", "Please try again.")
        try:
            order, created = self.store.submit_order(
                tenant_id=self.tenant_id, device_id=self.device_id,
                call_id=call.correlation.call_id or "unknown", caller=caller, lines=args.lines,
                currency=self.blueprint.currency, blueprint_hash=self.blueprint.content_hash,
                idempotency_key=call.idempotency_key, now=now,
            )
        except sqlite3.Error as exc:
            log.error("order.submit could not write", extra=fields(error=str(exc)))
            return self._error(call, "store.unavailable", "unavailable",
                               "I could not save your order.", retryable=True)
        with log_context(order_id=order.order_id):
            log.info("order submitted", extra=fields(number=order.number, created=created,
                                                    total_cents=order.total_cents))
        result = SubmitResult(order_id=order.order_id, number=order.number,
                              total_cents=order.total_cents, created=created)
        return ToolResult(tool=call.tool, ok=True, result=result.model_dump())

    @staticmethod
    def _error(call: ToolCall, code: str, category: str, message: str,
               retryable: bool = False) -> ToolResult:
        env = ErrorEnvelope(code=code, category=category, message=message,  # type: ignore[arg-type]
                            retryable=retryable, correlation=call.correlation)
        return ToolResult(tool=call.tool, ok=False, error=env)
