"""Retry state lives in the store: a restarted agent keeps backing off, and a ticket that keeps
failing on a ready printer is dead lettered with an alert and a ticket.failed event."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance.config import BoxIdentity
from appliance.edge.escpos_printer import EscposTicketPrinter
from appliance.edge.print_agent import Backoff, PrintAgent
from appliance.setup.app import create_app
from appliance.store.local_store import LocalStore
from tests.integration.test_print_agent import T0, FlakyPrinter, printed_events, submit


@pytest.fixture
def flaky() -> Iterator[FlakyPrinter]:
    server = FlakyPrinter(drops=1000)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def driver_for(server: FlakyPrinter) -> EscposTicketPrinter:
    return EscposTicketPrinter(f"tcp://127.0.0.1:{server.server_address[1]}", timeout_s=1.0)


def test_backoff_survives_a_restart_of_the_agent(tmp_path: Path, flaky: FlakyPrinter) -> None:
    db = tmp_path / "box.sqlite3"
    store = LocalStore(db)
    order = submit(store, "call-1")
    agent = PrintAgent(store, driver_for(flaky), "kitchen", Backoff(base_s=10, cap_s=600))
    assert agent.run_once(T0) == 0
    assert agent.run_once(T0 + timedelta(seconds=10.5)) == 0
    assert flaky.dropped == 2  # next try only at 10.5 + 20 s
    store.close()

    store = LocalStore(db)  # a new process: nothing about the failures is in memory
    agent = PrintAgent(store, driver_for(flaky), "kitchen", Backoff(base_s=10, cap_s=600))
    assert agent.run_once(T0 + timedelta(seconds=11)) == 0
    assert agent.run_once(T0 + timedelta(seconds=30)) == 0
    assert flaky.dropped == 2 and store.action_status(order.order_id) == "pending"
    summary = store.print_queue_summary()
    assert summary.tickets_failing == 1 and summary.last_error
    assert summary.last_error.startswith("printer.")

    flaky.drops = 0
    assert agent.run_once(T0 + timedelta(seconds=30.6)) == 1
    assert len(flaky.printed) == 1 and printed_events(store) == [(order.order_id, "kitchen")]


def test_jitter_spreads_the_persisted_next_attempt(tmp_path: Path, flaky: FlakyPrinter) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    submit(store, "call-1")
    agent = PrintAgent(store, driver_for(flaky), "kitchen",
                       Backoff(base_s=10, cap_s=600, jitter=0.5), rng=random.Random(7))
    draw = random.Random(7).random()  # the agent's first draw
    assert agent.run_once(T0) == 0
    due = T0 + timedelta(seconds=10 * (0.5 + draw))
    assert agent.run_once(due - timedelta(milliseconds=5)) == 0
    assert flaky.dropped == 1
    assert agent.run_once(due) == 0
    assert flaky.dropped == 2


def test_dead_letter_after_n_failures_alerts_and_tells_the_cloud(
        tmp_path: Path, flaky: FlakyPrinter, caplog: pytest.LogCaptureFixture) -> None:
    store = LocalStore(tmp_path / "box.sqlite3")
    order = submit(store, "call-1")
    later = submit(store, "call-2")
    agent = PrintAgent(store, driver_for(flaky), "kitchen", Backoff(base_s=1, cap_s=1),
                       dead_letter_after=3)
    with caplog.at_level(logging.WARNING, logger="appliance.edge.print_agent"):
        for second in range(0, 8, 2):
            agent.run_once(T0 + timedelta(seconds=second))
    assert store.action_status(order.order_id) == "dead_lettered"
    assert flaky.dropped >= 4  # three for the first ticket, then the next one's turn
    alerts = [getattr(r, "fields", {}) for r in caplog.records
              if getattr(r, "fields", {}).get("alert") == "print_dead_lettered"]
    assert alerts and alerts[0]["number"] == order.number and alerts[0]["failures"] == 3
    failed = [e for e in store.pending_events() if e.data.type == "ticket.failed"]
    assert [(e.data.order_id, e.data.failures) for e in failed] == [(order.order_id, 3)]
    assert failed[0].data.error.startswith("printer.")

    flaky.drops = 0  # the printer recovers: the dead letter stays put, the next ticket prints
    agent.run_once(T0 + timedelta(seconds=60))
    assert store.action_status(order.order_id) == "dead_lettered"
    assert store.action_status(later.order_id) == "succeeded"
    assert [c.lines[0].text for c in flaky.printed] == [f"ORDER #{later.number}"]
    summary = store.print_queue_summary()
    assert summary.tickets_dead_lettered == 1 and summary.tickets_pending == 0

    with TestClient(app=create_app(BoxIdentity(data_dir=tmp_path), store.path)) as client:
        orders = {o["order_id"]: o["ticket"] for o in client.get("/api/orders").json()}
        page = client.get("/").text
    assert orders == {order.order_id: "dead_lettered", later.order_id: "succeeded"}
    assert "<td>dead_lettered</td>" in page
