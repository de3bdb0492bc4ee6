"""Structured JSON logs that carry the canonical ids of whatever is being worked on.

Ids are bound with `log_context(...)` (a contextvar, so concurrent calls on one asyncio
loop keep their own ids) and appear on every line logged inside that context.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# An immutable default: every change sets a new dict, so contexts never share one.
_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "voxeron_log_context", default=MappingProxyType({})
)


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Bind canonical ids (tenant_id, device_id, call_id, order_id, action_id...) for a block."""
    merged = {**_CONTEXT.get(), **{k: v for k, v in ids.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**ids: str | None) -> None:
    """Bind ids for the rest of the current task or thread (process-level ids at start-up)."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in ids.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, process role, logger, message, ids, extras."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "role": self.role,
            "logger": record.name,
            "msg": record.getMessage(),
            **_CONTEXT.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(role: str, level: str = "INFO", stream: Any = None) -> None:
    """Configure the root logger of a process to write JSON lines for `role`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("amqtt", "transitions", "uvicorn.access", "httpx", "faster_whisper"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` payload for a log call: ``log.info("printed", extra=fields(bytes=120))``."""
    return {"fields": values}
