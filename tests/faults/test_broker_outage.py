"""Broker outage: Mosquitto stops while orders keep coming, then returns on the same port.

The kitchen must not notice: tickets keep printing from the local store. The outbox
grows by two events per order (order.submitted, ticket.printed) and voxeron-sync stays
up, retrying the broker with a growing delay. When the broker is back, everything drains
in seq order, exactly once.

How a multi-hour outage is compressed: the only clock-driven behaviour of the sync
process while the broker is away is its reconnect back-off (the MQTT link doubles the
delay from 1 s up to a cap of RECONNECT_CAP_S). Once the delay has reached the cap,
every further minute of outage is like the last: one attempt per cap interval, nothing
else changes but the outbox depth. So the test holds the outage until the sync process's
attempts (seen by a recorder holding the broker's port) are a cap apart, twice, while
it submits the orders of a busy evening; the soak variant submits thousands. The drain
decisions themselves are covered with time passed in by tests/unit/test_outbox_drain.py.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.broker import ConnectRecorder
from tests.faults.scale import Scale, variants
from tests.faults.stack import FaultStack, wait_until
from tests.faults.verdict import assert_exactly_once, box_backlog, cloud_seqs, settle

pytestmark = pytest.mark.slow
RECONNECT_CAP_S = 10.0  # sync.mqtt_link.MqttLink: reconnect_delay_set(min_delay=1, max_delay=10)


@pytest.mark.parametrize("scale", variants(Scale(orders=150, faults=1),
                                           Scale(orders=3000, faults=1)))
def test_broker_outage_until_backoff_cap_then_drain_in_order(
    stack: FaultStack, seed: int, scale: Scale,
) -> None:
    rng = random.Random(seed)
    before = [stack.loader.submit() for _ in range(10)]
    settle(stack, 120)
    synced = len(cloud_seqs(stack))

    stack.broker.stop()
    recorder = ConnectRecorder(stack.broker.port).start()
    try:
        during = []

        def at_cap() -> bool:
            return sum(g >= 0.9 * RECONNECT_CAP_S for g in recorder.gaps(stack.device_id)) >= 2

        while len(during) < scale.orders or not at_cap():
            if len(during) < scale.orders:
                during.append(stack.loader.submit())
            time.sleep(rng.uniform(0.05, 0.25))
            assert stack.sync.alive, f"sync died in the outage: {stack.tail(stack.sync)}"
        # The kitchen did not notice; the box kept every event; the cloud saw none of them.
        wait_until(lambda: box_backlog(stack)[0] == 0, 60, "tickets printed during the outage")
        assert box_backlog(stack) == (0, 2 * len(during))
        assert len(cloud_seqs(stack)) == synced
        assert stack.sync.alive and stack.edge.alive
        gaps = recorder.gaps(stack.device_id)
    finally:
        recorder.stop()
    stack.broker.start()
    assert stack.broker.starts == 2
    verdict = assert_exactly_once(stack, [*before, *during], context=f"seed={seed}")
    print(f"seed={seed}: {len(during)} orders during the outage; sync reconnect gaps (s) "
          f"{[round(g, 1) for g in gaps]}; {verdict}")
