"""Runs one typed tool call: allow-list, input validation, implementation, output validation.

Whatever goes wrong comes back as a ToolResult carrying an ErrorEnvelope, never as an
exception: a bad argument is category validation, an output that breaks its contract or an
implementation that crashed is integration, a store that cannot write is unavailable.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from blueprints.model import Blueprint
from sync.contracts.errors import Correlation, ErrorCategory, ErrorEnvelope
from sync.contracts.tool_schemas import NEEDS_IDEMPOTENCY_KEY, TOOLS
from sync.contracts.tools import ToolCall, ToolResult
from sync.ids import new_id
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolContext:
    """What an implementation may know about the call besides its arguments."""

    now: datetime
    caller: str | None
    correlation: Correlation
    idempotency_key: str | None


class ToolFailure(Exception):
    """Raised by an implementation to fail with a stable code and a user-safe message."""

    def __init__(self, code: str, category: ErrorCategory, message: str,
                 retryable: bool = False, retry_after_s: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.category, self.message = code, category, message
        self.retryable, self.retry_after_s = retryable, retry_after_s


ToolImpl = Callable[[Any, ToolContext], BaseModel]


def tool_call(tool: str, args: dict[str, Any], correlation: Correlation) -> ToolCall:
    """A call of a fixed-set tool at its contract version; effectful tools get a key per call."""
    key = f"{correlation.call_id}:{tool}" if tool in NEEDS_IDEMPOTENCY_KEY else None
    return ToolCall(tool=tool, version=TOOLS[tool].version, idempotency_key=key,
                    correlation=correlation, args=to_jsonable_python(args))


class ToolRegistry:
    """The implementations a process offers, gated by what the blueprint allows."""

    def __init__(self, blueprint: Blueprint, implementations: Mapping[str, ToolImpl]) -> None:
        unknown = sorted(set(implementations) - set(TOOLS))
        if unknown:
            raise ValueError(f"implementations for tools outside the fixed set: {unknown}")
        self.blueprint = blueprint
        self.implementations = dict(implementations)

    def handles(self, tool: str) -> bool:
        """True when this registry can run `tool` (allowed by the blueprint and implemented)."""
        return tool in self.implementations and tool in self.blueprint.tools_allowed

    def run(self, call: ToolCall, caller: str | None, now: datetime) -> ToolResult:
        """Run `call`; the result is ok with a contract-valid output, or carries the error."""
        corr = call.correlation
        if corr.action_id is None:
            corr = corr.model_copy(update={"action_id": new_id("act", int(now.timestamp() * 1000))})
        with log_context(call_id=corr.call_id, action_id=corr.action_id):
            result = self._run(call.model_copy(update={"correlation": corr}), caller, now)
            if result.error is not None:
                log.warning("tool failed", extra=fields(tool=call.tool, code=result.error.code,
                                                        category=result.error.category))
            return result

    def _run(self, call: ToolCall, caller: str | None, now: datetime) -> ToolResult:
        if call.tool not in self.blueprint.tools_allowed:
            return _error(call, "tool.not_allowed", "validation",
                          "That is not something I can do on this line.")
        contract, impl = TOOLS.get(call.tool), self.implementations.get(call.tool)
        if contract is None or impl is None:
            return _error(call, "tool.unavailable", "unavailable", "That is not available yet.")
        if call.version.split(".")[0] != contract.version.split(".")[0]:
            return _error(call, "tool.version", "validation",
                          f"{call.tool} speaks version {contract.version}, not {call.version}.")
        try:
            args = contract.input.model_validate(call.args)
        except ValidationError as exc:
            log.warning("tool input rejected", extra=fields(tool=call.tool,
                                                            errors=exc.errors(include_url=False)))
            return _error(call, f"{call.tool.split('.')[0]}.invalid", "validation",
                          "Something in that request is not right.")
        if call.tool in NEEDS_IDEMPOTENCY_KEY and not call.idempotency_key:
            return _error(call, "tool.no_idempotency_key", "validation", "Please try again.")
        ctx = ToolContext(now=now, caller=caller, correlation=call.correlation,
                          idempotency_key=call.idempotency_key)
        try:
            out = impl(args, ctx)
        except ToolFailure as f:
            return _error(call, f.code, f.category, f.message, f.retryable, f.retry_after_s)
        except sqlite3.Error as exc:
            log.error("tool could not use the store", extra=fields(tool=call.tool, error=str(exc)))
            return _error(call, "store.unavailable", "unavailable",
                          "I could not save that right now.", retryable=True)
        except Exception as exc:  # an implementation bug must not end the call
            log.exception("tool crashed", extra=fields(tool=call.tool, error=repr(exc)))
            return _error(call, "tool.crashed", "integration", "Something went wrong on our side.")
        try:
            raw = out.model_dump(mode="json") if isinstance(out, BaseModel) else out
            checked = contract.output.model_validate(raw)
        except ValidationError as exc:
            log.error("tool output broke its contract",
                      extra=fields(tool=call.tool, errors=exc.errors(include_url=False)))
            return _error(call, "tool.bad_output", "integration", "Something went wrong on our side.")
        return ToolResult(tool=call.tool, ok=True, result=checked.model_dump(mode="json"))


def _error(call: ToolCall, code: str, category: ErrorCategory, message: str,
           retryable: bool = False, retry_after_s: float | None = None) -> ToolResult:
    env = ErrorEnvelope(code=code, category=category, message=message, retryable=retryable,
                        retry_after_s=retry_after_s, correlation=call.correlation)
    return ToolResult(tool=call.tool, ok=False, error=env)
