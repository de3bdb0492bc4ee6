"""Old import path of the order dialog, which now runs on the generic conversation engine.

Kept so callers of `OrderDialog` keep working; new code builds `Conversation` directly.
"""

from __future__ import annotations

from appliance.dialog.conversation import (
    Action,
    CallTool,
    Conversation,
    Handoff,
    Hangup,
    Phase,
    Say,
)
from appliance.dialog.order_tools import session_tools
from blueprints.model import Blueprint
from sync.contracts.errors import Correlation

__all__ = ["Action", "CallTool", "Conversation", "Handoff", "Hangup", "OrderDialog", "Phase", "Say"]


def OrderDialog(blueprint: Blueprint, correlation: Correlation) -> Conversation:  # noqa: N802
    """A conversation over `blueprint` with its pure tools run in-process."""
    return Conversation(blueprint, correlation, session_tools(blueprint))
