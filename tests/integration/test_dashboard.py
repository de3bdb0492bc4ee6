"""The fleet dashboard in a real browser: uvicorn on a free port, Debian's Chromium driven
by Playwright. No page without a session; sign in with an ops token made the way the CLI
makes it; a fleet of 60 simulated devices; drill-down; a remediation button."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright
from pydantic import SecretStr

from cloud.config import CloudConfig
from cloud.control.app import create_app
from cloud.control.db import CloudDb
from cloud.control.ops_tokens import create_cli_token
from cloud.db import open_database
from cloud.integration.action_store import get_action, insert_action, save_transition
from cloud.integration.lifecycle import RetryPolicy, apply, new_action
from sync.contracts.errors import Correlation, ErrorEnvelope
from sync.contracts.events import EventEnvelope, OrderSubmitted, TicketPrinted
from sync.contracts.messages import DeviceStatus, Health
from sync.contracts.order import LineModifier, Order, OrderLine
from sync.ids import new_id
from tests.serve_asgi import serve_asgi

CHROMIUM = "/usr/bin/chromium"
BOOT = "boot-" + "b" * 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEVICES = 60


@dataclass
class Served:
    base: str
    cfg: CloudConfig
    db: CloudDb


@pytest.fixture
def served_cloud(tmp_path: Path) -> Iterator[Served]:
    """The cloud app on a real uvicorn bound to a free loopback port."""
    cfg = CloudConfig(db_path=tmp_path / "cloud.sqlite3", tenant_ca_dir=tmp_path / "ca",
                      bootstrap_ops_token=SecretStr(BOOT))
    app = create_app(cfg)
    db = CloudDb(cfg.db_path)
    try:
        with serve_asgi(app) as url:
            yield Served(url, cfg, db)
    finally:
        db.close()


def _order(tenant_id: str, device_id: str, now: datetime, number: int) -> Order:
    return Order(
        order_id=new_id("ord"), tenant_id=tenant_id, device_id=device_id, call_id=new_id("call"),
        number=number, lines=[
            OrderLine(line_id="l1", item_id="pizza_margherita", name="Margherita pizza",
                      quantity=2, size="large", unit_price_cents=1450,
                      modifiers=[LineModifier(kind="remove", name="basil")]),
            OrderLine(line_id="l2", item_id="sprite", name="Sprite <can>", quantity=1,
                      unit_price_cents=300)],
        total_cents=3200, currency="EUR", blueprint_hash="bp", created_at=now)


def _ingest(db: CloudDb, order: Order, now: datetime, printed: bool) -> None:
    datas: list[OrderSubmitted | TicketPrinted] = [OrderSubmitted(order=order)]
    if printed:
        datas.append(TicketPrinted(order_id=order.order_id, action_id=new_id("act"),
                                   printer="kitchen", printed_at=now))
    for seq, data in enumerate(datas, start=1):
        event = EventEnvelope(event_id=new_id("evt"), tenant_id=order.tenant_id,
                              device_id=order.device_id, seq=seq, occurred_at=now,
                              correlation=Correlation(), data=data)
        assert db.ingest_event(event, now) == "stored"


def _simulate_fleet(db: CloudDb, tenants: list[str], now: datetime) -> dict[str, str]:
    """DEVICES boxes over the tenants with health as the boxes send it; a few unhealthy."""
    problems: dict[str, str] = {}
    for i in range(DEVICES):
        tenant_id, device_id = tenants[i % len(tenants)], f"box-{i:03d}"
        online = i % 17 != 5
        db.record_status(DeviceStatus(tenant_id=tenant_id, device_id=device_id,
                                      online=True), now)
        printer = "paper_out" if i % 13 == 7 else "ok"
        alerts = ["disk_low"] if i % 19 == 3 else []
        db.record_health(Health(tenant_id=tenant_id, device_id=device_id, at=now,
                                outbox_depth=i % 7, printer=printer, firmware=f"1.{i % 3}.0",
                                disk_free_bytes=(200 if alerts else 9_000) * 1_000_000,
                                print_pending=i % 2, print_dead_lettered=1 if i == 11 else 0,
                                alerts=alerts), now)
        if not online:
            db.record_status(DeviceStatus(tenant_id=tenant_id, device_id=device_id,
                                          online=False), now)
            problems[device_id] = "device_offline"
        elif printer != "ok":
            problems[device_id] = "printer_not_ready"
        elif alerts:
            problems[device_id] = "disk_low"
    return problems


def _dead_letter(cfg: CloudConfig, tenant_id: str, order_id: str, now: datetime) -> str:
    """A POS write that the peer refused: dead-lettered, waiting for an operator."""
    db = open_database(cfg.control_database_url)
    try:
        action, event = new_action(tenant_id=tenant_id, order_id=order_id, kind="pos_write",
                                   integration_id="square", key=f"pos:{order_id}",
                                   payload={"order_id": order_id}, now=now,
                                   policy=RetryPolicy())
        with db.tenant(tenant_id) as tx:
            assert insert_action(tx, action, event)
            for transition in ("claim", "fail_permanent"):
                before = get_action(tx, action.action_id, lock=True)
                after, ev = apply(before, transition, now, actor="worker", error=ErrorEnvelope(
                    code="pos.rejected", category="validation", message="location unknown"))
                save_transition(tx, before, after, ev)
    finally:
        db.close()
    return action.action_id


def _action_state(cfg: CloudConfig, tenant_id: str, action_id: str) -> str:
    db = open_database(cfg.control_database_url)
    try:
        with db.tenant(tenant_id) as tx:
            return get_action(tx, action_id).state
    finally:
        db.close()


def _sign_in(page: Page, token: str) -> None:
    page.fill("#token", token)
    page.click("#sign-in")
    page.wait_for_load_state()


def test_fleet_dashboard_needs_a_session_and_shows_the_fleet(
        tmp_path: Path, served_cloud: Served) -> None:
    base, cfg, db = served_cloud.base, served_cloud.cfg, served_cloud.db
    now = datetime.now(UTC)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {BOOT}"})
    tenants = []
    for name in ("pizza-north", "pizza-south", "sushi-east"):
        r = api.post("/api/v1/tenants", json={"tenant_id": name, "name": name})
        assert r.status_code == 201, r.text
        tenants.append(name)
    problems = _simulate_fleet(db, tenants, now)
    order = _order("pizza-south", "box-001", now, 417)
    _ingest(db, order, now, printed=True)
    _ingest(db, _order("pizza-south", "box-001", now, 418), now, printed=False)
    action_id = _dead_letter(cfg, "pizza-south", order.order_id, now)
    ops = create_cli_token(cfg, now, tenant_id=None, name="dashboard test", expires_in_days=1)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # No session: every page sends the browser to the login page.
            for path in ("/dashboard", "/dashboard/devices/pizza-south/box-001",
                         "/dashboard/rollouts/pizza-south"):
                page.goto(base + path)
                assert page.url.startswith(base + "/dashboard/login"), page.url
                assert page.locator("#sign-in").count() == 1
            _sign_in(page, "vxt_not-a-real-token")
            assert "unknown API token" in page.locator("#login-error").inner_text()

            page.goto(base + "/dashboard")
            _sign_in(page, ops.secret)
            assert page.url == base + "/dashboard", page.url
            cookie = next(c for c in page.context.cookies() if c["name"] == "vx_ops_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

            rows = page.locator("tr.device")
            assert rows.count() == DEVICES
            summary = page.locator("#summary").inner_text()
            offline = sum(1 for p in problems.values() if p == "device_offline")
            assert f"{DEVICES - offline}/{DEVICES} devices online" in summary
            first = rows.nth(0)  # unhealthy first
            assert first.get_attribute("class") == "device unhealthy"
            bad_ids = [rows.nth(i).get_attribute("data-device-id")
                       for i in range(len(problems) + 1)]
            assert set(problems) <= set(bad_ids)  # box-011's dead letter is unhealthy too
            for device_id, alert in problems.items():
                row = page.locator(f'tr[data-device-id="{device_id}"]')
                assert alert in row.locator("td.alerts").inner_text()
            busy = page.locator('tr[data-device-id="box-001"]')
            assert busy.locator("td.orders").inner_text() == "2"
            assert busy.locator("td.calls").inner_text() == "2"
            assert "2× Margherita pizza (large, remove basil)" in page.content()
            assert "Sprite &lt;can&gt;" in page.content()  # names are text, never markup
            assert "<script" not in page.content()

            page.goto(base + "/dashboard?state=offline&sort=device")
            assert page.locator("tr.device").count() == offline
            page.goto(base + "/dashboard?q=sushi&sort=outbox&desc=true")
            depths = [int(t) for t in page.locator("tr.device td.outbox").all_inner_texts()]
            assert depths and depths == sorted(depths, reverse=True)

            page.goto(base + "/dashboard")
            shot = tmp_path / "fleet.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 20_000
            print(f"fleet screenshot ({DEVICES} devices): {shot}")

            page.click('a[href="/dashboard/devices/pizza-south/box-001"]')
            page.wait_for_load_state()
            assert page.url.endswith("/dashboard/devices/pizza-south/box-001")
            assert page.locator("#device-orders tr.order").count() == 2
            assert page.locator("#health-history svg polyline").count() == 2  # outbox, disk
            action_row = page.locator(f'tr[data-action-id="{action_id}"]')
            assert "dead_lettered" in action_row.inner_text()
            assert "location unknown" in action_row.inner_text()
            action_row.locator("button", has_text="Retry now").click()
            page.wait_for_load_state()
            assert "is now pending" in page.locator("#note").inner_text()
            assert _action_state(cfg, "pizza-south", action_id) == "pending"
            page.screenshot(path=str(tmp_path / "device.png"), full_page=True)

            page.goto(base + "/dashboard/rollouts/pizza-south")
            assert "pizza-south" in page.content()

            page.goto(base + "/dashboard")
            page.click("#sign-out")
            page.wait_for_load_state()
            assert page.url.startswith(base + "/dashboard/login")
            page.goto(base + "/dashboard")
            assert page.url.startswith(base + "/dashboard/login")
        finally:
            browser.close()


def test_forged_or_foreign_sessions_and_forms_are_refused(served_cloud: Served) -> None:
    base, cfg = served_cloud.base, served_cloud.cfg
    now = datetime.now(UTC)
    ops = create_cli_token(cfg, now, tenant_id=None, name="forms", expires_in_days=1)
    with httpx.Client(base_url=base, cookies={"vx_ops_session": "e30.forged"}) as forged:
        r = forged.get("/dashboard")
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
    with httpx.Client(base_url=base) as web:
        r = web.post("/dashboard/login", data={"token": ops.secret, "next": "https://evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        r = web.post("/dashboard/actions/pizza/act_1/skip", data={"form_token": "stale"})
        assert r.status_code == 403
        assert ErrorEnvelope.model_validate(r.json()).code == "dashboard.form_token"
        assert web.get("/dashboard").status_code == 200
        r = httpx.get(base + "/dashboard", headers={"Authorization": f"Bearer {ops.secret}"})
        assert r.status_code == 200  # API clients may use the token itself
        db = open_database(cfg.control_database_url)
        try:  # revoking the token ends the sessions opened with it
            with db.fleet() as tx:
                tx.execute("UPDATE api_tokens SET revoked_at = :now WHERE token_id = :id",
                           {"now": now, "id": ops.token_id})
        finally:
            db.close()
        r = web.get("/dashboard")
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
