"""SIGKILL of a process in the middle of its SQLite writes: all or nothing, no torn file.

A writer submits orders in a tight loop (each one a transaction: order, submission key,
ticket action and order.submitted event) while the edge and sync processes claim, print
and ack on the same WAL file; the writer is killed at random moments and started again.
SQLite's journal must leave either the whole order or none of it, and the next process to
open the file must find it intact.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync.contracts.order import Order
from tests.faults.scale import Scale, variants
from tests.faults.stack import FaultStack, wait_until
from tests.faults.verdict import ORDER_ID, assert_exactly_once

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _run_writer_until_killed(stack: FaultStack, out: Path, rng: random.Random) -> list[str]:
    """Start a writer, SIGKILL it after a random moment; the order ids it reported."""
    with out.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.order_writer", str(stack.box_db),
             stack.tenant_id, stack.device_id], stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_until(lambda: out.read_bytes().startswith(b"ready\n") or proc.poll() is not None,
                   60, "the order writer", lambda: out.read_text(errors="replace")[-2000:])
        time.sleep(rng.uniform(0.005, 0.05))  # tens of orders a life
        assert proc.poll() is None, f"writer died by itself: {out.read_text()[-2000:]}"
    finally:
        proc.kill()
        proc.wait(10)
    # The last line may be cut short by the kill: take whole ids only.
    return [line for line in out.read_text().splitlines()[1:] if ORDER_ID.fullmatch(line)]


def _check_all_or_nothing(db: Path) -> list[str]:
    """Problems with the store's file after the kills (empty when intact and consistent)."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        problems = []
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems.append(f"integrity_check: {integrity[:5]}")
        q = conn.execute
        orphans = {
            "orders without exactly one submission key": q(
                "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM submissions s "
                "WHERE s.order_id = o.order_id) != 1").fetchone()[0],
            "orders without exactly their one ticket action": q(
                "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM actions a "
                "JOIN submissions s ON a.idempotency_key = s.idempotency_key || ':ticket' "
                "AND s.order_id = a.order_id WHERE a.order_id = o.order_id "
                "AND a.kind = 'print_ticket') != 1").fetchone()[0],
            "orders without exactly one order.submitted event": q(
                "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM outbox e "
                "WHERE json_extract(e.body, '$.data.type') = 'order.submitted' "
                "AND json_extract(e.body, '$.data.order.order_id') = o.order_id) != 1"
            ).fetchone()[0],
            "actions, submissions or events of no order": q(
                "SELECT (SELECT COUNT(*) FROM actions WHERE order_id NOT IN "
                "(SELECT order_id FROM orders)) + (SELECT COUNT(*) FROM submissions WHERE "
                "order_id NOT IN (SELECT order_id FROM orders)) + (SELECT COUNT(*) FROM outbox "
                "WHERE body = '' OR json_extract(body, '$.correlation.order_id') NOT IN "
                "(SELECT order_id FROM orders))").fetchone()[0],
        }
        problems += [f"{what}: {n}" for what, n in orphans.items() if n]
        numbers = [r[0] for r in q("SELECT number FROM orders ORDER BY number")]
        if numbers != list(range(1, len(numbers) + 1)):
            dupes = len(numbers) - len(set(numbers))
            problems.append(f"order numbers not 1..{len(numbers)}: {dupes} duplicates, "
                            f"first {numbers[:10]}")
    return problems


@pytest.mark.parametrize("scale", variants(Scale(orders=0, faults=10),
                                           Scale(orders=0, faults=300)))
def test_sigkill_during_sqlite_writes_leaves_whole_orders_only(
    stack: FaultStack, seed: int, scale: Scale, tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    reported: list[str] = []
    for kill in range(scale.faults):
        reported += _run_writer_until_killed(stack, tmp_path / f"writer-{kill}.out", rng)

    problems = _check_all_or_nothing(stack.box_db)
    assert not problems, f"seed={seed}: " + "; ".join(problems)
    with contextlib.closing(sqlite3.connect(stack.box_db, timeout=30)) as conn:
        orders = [Order.model_validate_json(b) for (b,) in
                  conn.execute("SELECT body FROM orders ORDER BY number")]
    lost = set(reported) - {o.order_id for o in orders}
    assert not lost, f"seed={seed}: orders reported committed but missing: {sorted(lost)[:5]}"
    assert len(orders) >= scale.faults, "the writer hardly wrote: the kills tested nothing"
    verdict = assert_exactly_once(stack, orders, context=f"seed={seed}")
    print(f"seed={seed}: {scale.faults} writer kills, {len(reported)} orders reported, "
          f"{len(orders)} stored; {verdict}")
