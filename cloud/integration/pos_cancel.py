"""What a `pos_cancel` action does, decided from the `pos_write` it undoes.

The rule that keeps the POS consistent: a cancel never overtakes its create. It cancels
the Square order only once the write succeeded (the write's result names the order and
its version); while the write is pending, in flight, retrying or dead-lettered it waits
(retry_scheduled, with the usual backoff, without touching the breaker); when the write
was closed or never planned there is nothing on the POS to cancel, and it says so.
"""

from __future__ import annotations

from typing import Any

import httpx

from cloud.db import Database, Transaction
from cloud.integration.action_store import action_from_row
from cloud.integration.delivery import Outcome
from cloud.integration.planner import pos_write_key
from cloud.integration.pos_square import CancelTarget, SquareConfig, SquarePos
from sync.contracts.actions import Action

_UNSETTLED = ("pending", "in_flight", "retry_scheduled", "dead_lettered")


def _read_write(tx: Transaction, key: str) -> Action | None:
    row = tx.fetch_one("SELECT * FROM integration_actions WHERE tenant_id = :tenant_id "
                       "AND idem_key = :key", {"key": key})
    return action_from_row(row) if row is not None else None


def cancel_step(write: Action | None) -> CancelTarget | Outcome:
    """The Square order to cancel, or the outcome that needs no request (pure)."""
    if write is None:
        return Outcome.nothing_to_do("the order was never planned for this POS")
    if write.state in _UNSETTLED:
        return Outcome.not_yet("pos.cancel_waits_for_write",
                               f"the POS write {write.action_id} is {write.state}; the cancel "
                               "goes once it has settled")
    if write.state != "succeeded":
        sent = f" after {write.attempts} unconfirmed attempts" if write.attempts else \
            " before it was sent"
        return Outcome.nothing_to_do(f"the POS write {write.action_id} was {write.state}{sent}")
    result: dict[str, Any] = write.result or {}
    order_id = result.get("square_order_id")
    if not isinstance(order_id, str):
        return Outcome.failed("permanent", "pos.cancel_without_order", "integration",
                              f"the POS write {write.action_id} succeeded without a Square "
                              "order id (resolved by hand?): cancel it on the POS by hand")
    version = result.get("square_version")
    return CancelTarget(square_order_id=order_id,
                        location_id=str(write.payload["order"]["location_id"]),
                        version=version if isinstance(version, int) else None)


def deliver_square(db: Database, config: SquareConfig, client: httpx.Client,
                   action: Action) -> Outcome:
    """Deliver a Square action: a write as CreateOrder, a cancel as decided by its write."""
    pos = SquarePos(config, client)
    if action.kind != "pos_cancel":
        return pos.deliver(action)
    with db.tenant(action.tenant_id) as tx:
        write = _read_write(tx, pos_write_key(action.order_id, action.integration_id))
    step = cancel_step(write)
    return step if isinstance(step, Outcome) else pos.cancel(action, step)
