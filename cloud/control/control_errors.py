"""Expected failures of the control-plane repositories, as data the API maps to statuses.

Repositories raise `ControlError`; `control_plane` turns it into an ErrorEnvelope with
404 (not_found), 409 (conflict) or 422 (invalid). A resource of another tenant is always
`not_found`, never a distinct "forbidden", so its existence is not confirmed.
"""

from __future__ import annotations

from typing import Literal

ControlErrorKind = Literal["not_found", "conflict", "invalid"]


class ControlError(Exception):
    """A refused control-plane request: a stable `code` and a message safe to show."""

    def __init__(self, kind: ControlErrorKind, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
