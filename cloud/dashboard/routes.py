"""HTTP routes of the fleet dashboard: sign-in, fleet, device drill-down, remediation, rollouts.

Every page needs an operator session (cookie from `/dashboard/login`, see
`cloud.control.ops_session`); without one it redirects to the login page. Non-browser
clients may send `Authorization: Bearer <token>` instead. Remediation buttons are plain
POST forms carrying the session's form token; they call the integration plane's
operations in-process, audited with the operator's actor. Pages are Jinja templates
rendered on the server; no scripts, no external assets, no build step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud.config import CloudConfig
from cloud.control.api_errors import ApiError
from cloud.control.audit import ChangeContext
from cloud.control.auth import Principal, authenticate, require_tenant
from cloud.control.cache import HotCache
from cloud.control.control_errors import ControlError
from cloud.control.control_state import ControlDep, ControlPlane, NowDep
from cloud.control.dependencies import DbDep
from cloud.control.device_desired import rollout_status
from cloud.control.ops_session import (
    COOKIE_NAME,
    COOKIE_PATH,
    OpsSession,
    SessionRequired,
    SessionSigner,
    SignerDep,
    sign_in,
    token_still_valid,
)
from cloud.control.rollout import history, live_versions
from cloud.control.tenants import check_tenant_id, existing_tenant
from cloud.dashboard.fleet_page import (
    SORT_KEYS,
    SortKey,
    StateFilter,
    ago,
    environment,
    fleet_rows,
    select_rows,
    start_of_day,
    summarize,
)
from cloud.dashboard.health_page import WINDOW, health_day
from cloud.dashboard.rollout_page import render_rollouts
from cloud.integration.action_store import ActionNotFound, list_actions, list_breakers
from cloud.integration.lifecycle import IllegalTransition
from cloud.integration.remediation import Operation, OrderNotFound, operate, replay
from sync.contracts.actions import Action
from sync.contracts.errors import ErrorEnvelope
from sync.ids import new_id
from sync.structured_log import log_context

router = APIRouter(include_in_schema=False)  # HTML for people, not the public API
AuthorizationHeader = Annotated[str | None, Header()]
_HIDDEN = {"include_in_schema": False}
_ENV = environment()
_FAILED_STATES = ("dead_lettered", "retry_scheduled")
_OPS: dict[str, Operation] = {"retry-now": "retry_now", "skip": "skip", "resolve": "resolve"}


class Viewer:
    """Who looks at a page: an operator session, or a bearer principal (API clients)."""

    def __init__(self, actor: str, session: OpsSession | None, form_token: str,
                 principal: Principal | None = None) -> None:
        self.actor, self.session, self.form_token = actor, session, form_token
        self.principal = principal


def _viewer(request: Request, control: ControlPlane, signer: SessionSigner,
            now: datetime, authorization: str | None = None) -> Viewer:
    """The session's operator, else a bearer principal, else SessionRequired."""
    session = signer.verify(request.cookies.get(COOKIE_NAME), now)
    if session is not None and token_still_valid(control, session, now):
        return Viewer(session.actor, session, signer.form_token(session))
    header = authorization or request.headers.get("authorization")
    if header:
        principal = authenticate(control, now, authorization=header)  # 401 when bad
        return Viewer(principal.actor, None, "", principal)
    if request.method != "GET":  # a stale form: sign in again, then start from the fleet
        raise SessionRequired("/dashboard")
    raise SessionRequired(request.url.path + (f"?{request.url.query}" if request.url.query
                                              else ""))


def _ops_viewer(request: Request, control: ControlPlane, signer: SessionSigner,
                now: datetime) -> Viewer:
    viewer = _viewer(request, control, signer, now)
    if viewer.principal is not None and not viewer.principal.is_ops:
        raise ApiError(403, _scope_error())
    return viewer


def _scope_error() -> ErrorEnvelope:
    return ErrorEnvelope(code="auth.scope", category="validation",
                         message="the fleet dashboard needs an ops session or ops token")


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code,
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'; form-action 'self'"})


def _safe_next(value: str | None) -> str:
    """Only a dashboard path of this site: never an open redirect."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard"


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:16384].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


# Sign-in and sign-out.

@router.get("/dashboard/login", response_class=HTMLResponse, **_HIDDEN)
def login_page(next: Annotated[str | None, Query(max_length=500)] = None) -> HTMLResponse:
    return _page("login.html", next=_safe_next(next), error=None)


@router.post("/dashboard/login", **_HIDDEN)
async def login(request: Request, control: ControlDep, signer: SignerDep,
                now: NowDep) -> Response:
    form = await _form(request)
    target = _safe_next(form.get("next"))
    outcome = sign_in(control, form.get("token", ""), now)
    if isinstance(outcome, str):
        return _page("login.html", status_code=401, next=target, error=outcome)
    cookie, session = signer.issue(outcome, now)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE_NAME, cookie, max_age=int(signer.ttl.total_seconds()),
                        expires=session.expires_at, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/dashboard/logout", **_HIDDEN)
async def logout(request: Request) -> Response:
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


# The fleet.

def _tenant_panels(control: ControlPlane, tenant_ids: list[str],
                   ) -> tuple[dict[str, list[str]], list[Action], dict[str, dict[str, int]]]:
    """Per tenant with devices: open POS breakers, failed actions, live rollout versions."""
    breakers: dict[str, list[str]] = {}
    failed: list[Action] = []
    live: dict[str, dict[str, int]] = {}
    for tenant_id in tenant_ids:
        try:
            with existing_tenant(control.db, tenant_id) as tx:
                breakers[tenant_id] = [b.integration_id for b in list_breakers(tx)
                                       if b.mode != "closed"]
                for state in _FAILED_STATES:
                    failed += list_actions(tx, state=state, limit=20)
                live[tenant_id] = dict(live_versions(tx))
        except ControlError:  # devices seen over MQTT of a tenant not registered here
            continue
    failed.sort(key=lambda a: a.updated_at, reverse=True)
    return breakers, failed[:100], live


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, db: DbDep, control: ControlDep, signer: SignerDep,
              now: NowDep, sort: Annotated[SortKey, Query()] = "health",
              desc: bool = False, state: Annotated[StateFilter, Query()] = "all",
              q: Annotated[str, Query(max_length=100)] = "",
              authorization: AuthorizationHeader = None) -> HTMLResponse:
    """Every device of the fleet and the latest orders of every tenant."""
    viewer = _ops_viewer(request, control, signer, now)
    devices = db.devices()
    since = start_of_day(now)
    today = [o for o in db.orders(limit=5000) if o.created_at >= since]
    tenant_ids = sorted({d.tenant_id for d in devices})
    breakers, failed, live = _tenant_panels(control, tenant_ids)
    rows = fleet_rows(devices, today, now, breakers)
    return _page("fleet.html", viewer=viewer, now=now, refresh_s=10,
                 rows=select_rows(rows, sort=sort, desc=desc, state=state, q=q),
                 summary=summarize(rows), sort=sort, desc=desc, state=state, q=q,
                 sort_keys=SORT_KEYS, orders=db.orders(limit=30), failed=failed, live=live,
                 ago=_ago(now), note=request.query_params.get("note"))


def _ago(now: datetime) -> Callable[[datetime | None], str]:
    return lambda t: ago(t, now)


@router.get("/dashboard/devices/{tenant_id}/{device_id}", response_class=HTMLResponse,
            **_HIDDEN)
def device_page(request: Request, db: DbDep, control: ControlDep, signer: SignerDep,
                now: NowDep, tenant_id: str, device_id: str) -> HTMLResponse:
    """One device: health and its last 24 h, alerts, recent orders, desired vs reported,
    commands, actions."""
    viewer = _ops_viewer(request, control, signer, now)
    record = next((d for d in db.devices(tenant_id) if d.device_id == device_id), None)
    if record is None:
        return _page("not_found.html", status_code=404, viewer=viewer,
                     what=f"device {device_id} of tenant {tenant_id}")
    cache: HotCache = request.app.state.cache
    desired = cache.desired(tenant_id, device_id,
                            lambda: db.desired_state(tenant_id, device_id))
    reported = db.reported_states(tenant_id, device_id)
    orders = [o for o in db.orders(tenant_id, limit=200) if o.device_id == device_id][:20]
    since = start_of_day(now)
    breakers, failed, _ = _tenant_panels(control, [tenant_id])
    order_ids = {o.order_id for o in orders}
    row = fleet_rows([record], [o for o in orders if o.created_at >= since], now, breakers)[0]
    # A day of 30-second reports is 2880; the view folds them into one point per pixel.
    history = db.health_history(tenant_id, device_id, since=now - WINDOW, limit=5000)
    day = health_day(history.reports if history else [], now)
    return _page("device.html", viewer=viewer, now=now, row=row, health=record.last_health,
                 day=day,
                 desired=desired, reported=reported[0] if reported else None, orders=orders,
                 commands=db.device_commands(tenant_id, device_id)[-20:],
                 failed=[a for a in failed if a.order_id in order_ids], ago=_ago(now),
                 note=request.query_params.get("note"))


# Remediation: POST forms from the fleet and device pages.

def _remedy_context(request: Request, control: ControlPlane, signer: SessionSigner,
                    now: datetime, form: dict[str, str]) -> ChangeContext:
    viewer = _ops_viewer(request, control, signer, now)
    if viewer.session is not None and not signer.check_form_token(
            viewer.session, form.get("form_token", "")):
        raise ApiError(403, _form_error())
    return ChangeContext(actor=f"dashboard:{viewer.actor}", request_id=new_id("job"), now=now)


def _form_error() -> ErrorEnvelope:
    return ErrorEnvelope(code="dashboard.form_token", category="validation",
                         message="this form is stale or from another session; reload the page")


def _back(form: dict[str, str], note: str) -> RedirectResponse:
    target = _safe_next(form.get("back"))
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}note={quote(note)}", status_code=303)


@router.post("/dashboard/actions/{tenant_id}/{action_id}/{op}", **_HIDDEN)
async def remedy_action(request: Request, control: ControlDep, signer: SignerDep,
                        now: NowDep, tenant_id: str, action_id: str, op: str) -> Response:
    form = await _form(request)
    ctx = _remedy_context(request, control, signer, now, form)
    if op not in _OPS:
        return _back(form, f"unknown operation {op}")
    with log_context(tenant_id=tenant_id, action_id=action_id):
        try:
            check_tenant_id(tenant_id)
            after = operate(control.db, tenant_id, action_id, _OPS[op], ctx,
                            reason=form.get("reason") or "from the fleet dashboard")
        except (ActionNotFound, ControlError):
            return _back(form, f"no action {action_id} for tenant {tenant_id}")
        except IllegalTransition as exc:
            return _back(form, f"{op} not possible: {exc}")
    return _back(form, f"{op}: action {action_id} is now {after.state}")


@router.post("/dashboard/orders/{tenant_id}/{order_id}/replay", **_HIDDEN)
async def replay_order(request: Request, control: ControlDep, signer: SignerDep,
                       now: NowDep, tenant_id: str, order_id: str) -> Response:
    form = await _form(request)
    ctx = _remedy_context(request, control, signer, now, form)
    with log_context(tenant_id=tenant_id, order_id=order_id):
        try:
            check_tenant_id(tenant_id)
            touched = replay(control.db, tenant_id, order_id, ctx)
        except (OrderNotFound, ControlError):
            return _back(form, f"no events of order {order_id} reached the integration plane")
    return _back(form, f"replayed order {order_id}: {len(touched)} action(s)")


# Rollouts (K's panel), behind the same sign-in.

@router.get("/dashboard/rollouts/{tenant_id}", response_class=HTMLResponse)
def rollouts(request: Request, control: ControlDep, db: DbDep, signer: SignerDep,
             now: NowDep, tenant_id: str, authorization: AuthorizationHeader = None,
             ) -> HTMLResponse:
    """The tenant's versions and which devices reported each applied (tenant:read)."""
    viewer = _viewer(request, control, signer, now)
    if viewer.principal is not None:
        require_tenant(viewer.principal, tenant_id, "read")
    with existing_tenant(control.db, tenant_id) as tx:
        versions = history(tx, 20)
        statuses = {v.version: rollout_status(tx, db, v.version)
                    for v in versions if v.promoted_to}
        live = live_versions(tx)
    return HTMLResponse(render_rollouts(tenant_id, versions, statuses, live, now))


async def _login_redirect(request: Request, exc: SessionRequired) -> Response:
    return RedirectResponse(f"/dashboard/login?next={quote(exc.next_path)}", status_code=303)


def install_dashboard(app: FastAPI, cfg: CloudConfig) -> None:
    """Mount the dashboard with its session signer and the redirect-to-login handler."""
    key = cfg.session_secret.get_secret_value().encode() if cfg.session_secret else None
    app.state.session_signer = SessionSigner(key, timedelta(seconds=cfg.session_ttl_s))
    app.add_exception_handler(SessionRequired, _login_redirect)  # type: ignore[arg-type]
    app.include_router(router)

