"""The fleet dashboard as a browser shows it: real uvicorn, headless Chromium, no scripts."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn

from cloud.config import CloudConfig
from cloud.control.app import create_app
from cloud.control.db import CloudDb
from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, OrderSubmitted, TicketPrinted
from sync.contracts.messages import DeviceStatus, Health
from sync.contracts.order import LineModifier, Order, OrderLine
from sync.ids import new_id

CHROMIUM = "/usr/bin/chromium"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=90, check=False)


@pytest.fixture
def served_cloud(tmp_path: Path) -> Iterator[tuple[str, CloudDb]]:
    """The cloud app on a real uvicorn bound to a free loopback port."""
    cfg = CloudConfig(db_path=tmp_path / "cloud.sqlite3")
    db = CloudDb(cfg.db_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", db
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        db.close()


def _ingest_order(db: CloudDb, tenant_id: str, device_id: str) -> Order:
    now = datetime.now(UTC)
    order = Order(
        order_id=new_id("ord"), tenant_id=tenant_id, device_id=device_id, call_id=new_id("call"),
        number=417, lines=[
            OrderLine(line_id="l1", item_id="pizza_margherita", name="Margherita pizza",
                      quantity=2, size="large", unit_price_cents=1450,
                      modifiers=[LineModifier(kind="remove", name="basil")]),
            OrderLine(line_id="l2", item_id="sprite", name="Sprite <can>", quantity=1,
                      unit_price_cents=300),
        ],
        total_cents=3200, currency="EUR", blueprint_hash="bp", created_at=now,
    )
    for seq, data in enumerate([
        OrderSubmitted(order=order),
        TicketPrinted(order_id=order.order_id, action_id=new_id("act"), printer="kitchen",
                      printed_at=now),
    ], start=1):
        event = EventEnvelope(event_id=new_id("evt"), tenant_id=tenant_id, device_id=device_id,
                              seq=seq, occurred_at=now, correlation=Correlation(), data=data)
        assert db.ingest_event(event, now) == "stored"
    db.record_status(DeviceStatus(tenant_id=tenant_id, device_id=device_id, online=True), now)
    db.record_health(Health(tenant_id=tenant_id, device_id=device_id, at=now, outbox_depth=3,
                            printer="ok", firmware="0.1.0"), now)
    offline = new_id("dev")
    db.record_status(DeviceStatus(tenant_id=tenant_id, device_id=offline, online=False), now)
    return order


def test_dashboard_renders_devices_and_orders_in_chromium(
    tmp_path: Path, served_cloud: tuple[str, CloudDb],
) -> None:
    base, db = served_cloud
    tenant_id, device_id = new_id("ten"), new_id("dev")
    order = _ingest_order(db, tenant_id, device_id)
    url = f"{base}/dashboard"

    dumped = _chromium(tmp_path / "profile-dom", "--dump-dom", url)
    dom = dumped.stdout.decode("utf-8", "replace")
    assert dumped.returncode == 0, dumped.stderr.decode()[-2000:]
    assert f"#{order.number}" in dom
    assert device_id in dom and order.order_id in dom
    assert "2× Margherita pizza (large, remove basil)" in dom
    assert "Sprite &lt;can&gt;" in dom  # names are escaped, never markup
    assert "32.00 EUR" in dom
    assert 'http-equiv="refresh" content="2"' in dom
    assert "<script" not in dom and "http://" not in dom.replace(base, "")
    row = dom[dom.index(f'data-device-id="{device_id}"'):]
    row = row[: row.index("</tr>")]
    assert ">online<" in row and 'class="outbox">3<' in row
    order_row = dom[dom.index(f'data-order-id="{order.order_id}"'):]
    assert ">yes<" in order_row[: order_row.index("</tr>")]
    assert ">offline<" in dom and "1/2 devices online" in dom

    shot = tmp_path / "dashboard.png"
    taken = _chromium(tmp_path / "profile-shot", "--window-size=1280,900",
                      f"--screenshot={shot}", url)
    assert taken.returncode == 0, taken.stderr.decode()[-2000:]
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
