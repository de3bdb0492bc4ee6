"""Browser sessions of operators on the fleet dashboard.

A browser cannot send a bearer token with a link or a form, so an operator signs in once
with an ops token and gets a cookie instead: `<payload>.<HMAC-SHA256>`, HttpOnly,
SameSite=Strict (no other site can make the browser send it), with its own expiry. The
payload names the token, and every request re-checks that token in the database, so
revoking the token (or its expiry) ends the session too. The signing key comes from the
config; without one a random key per process means sessions end when the process does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from cloud.control.api_errors import ApiError
from cloud.control.auth import Principal, authenticate
from cloud.control.control_state import ControlPlane

COOKIE_NAME = "vx_ops_session"
COOKIE_PATH = "/dashboard"
DEFAULT_TTL = timedelta(hours=8)


class OpsSession(BaseModel):
    """Who signed in, with which token, until when."""

    actor: str
    token_id: str | None
    expires_at: datetime
    nonce: str


class SessionRequired(Exception):
    """No valid session: the dashboard answers with a redirect to its login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session cookies and the per-session form token (CSRF)."""

    def __init__(self, key: bytes | None = None, ttl: timedelta = DEFAULT_TTL) -> None:
        self._key = key or secrets.token_bytes(32)
        self.ttl = ttl

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, principal: Principal, now: datetime) -> tuple[str, OpsSession]:
        session = OpsSession(actor=principal.actor, token_id=principal.token_id,
                             expires_at=now + self.ttl, nonce=secrets.token_hex(8))
        payload = _b64(session.model_dump_json().encode())
        return f"{payload}.{self._mac(payload)}", session

    def verify(self, cookie: str | None, now: datetime) -> OpsSession | None:
        """The session in a cookie, or None if absent, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            session = OpsSession.model_validate_json(_unb64(payload))
        except (ValueError, ValidationError):
            return None
        return session if session.expires_at > now else None

    def form_token(self, session: OpsSession) -> str:
        """Hidden in every form and checked on POST, tying the form to this session."""
        return self._mac(f"form:{session.nonce}:{session.actor}")

    def check_form_token(self, session: OpsSession, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.form_token(session).encode())


def sign_in(control: ControlPlane, secret: str, now: datetime) -> Principal | str:
    """The operator behind an ops token, or why it cannot sign in."""
    try:
        principal = authenticate(control, now, authorization=f"Bearer {secret.strip()}")
    except ApiError as exc:
        return exc.envelope.message
    if not principal.is_ops:
        return "this token is not an ops token (scope ops:*)"
    return principal


def token_still_valid(control: ControlPlane, session: OpsSession, now: datetime) -> bool:
    """False once the token the session was opened with is revoked, expired or gone."""
    if session.token_id is None:  # the bootstrap token: valid while configured
        return control.bootstrap_ops_token is not None
    with control.db.fleet() as tx:
        row = tx.fetch_one("SELECT revoked_at, expires_at FROM api_tokens "
                           "WHERE token_id = :token_id", {"token_id": session.token_id})
    if row is None or row["revoked_at"] is not None:
        return False
    expires = row["expires_at"]
    if expires is None:
        return True
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires)
    return bool(expires > now)


def get_signer(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.session_signer
    return signer


SignerDep = Annotated[SessionSigner, Depends(get_signer)]
