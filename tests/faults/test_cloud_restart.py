"""The cloud process SIGKILLed while a backlog of hundreds of events drains into it.

Events the killed ingest had taken from the broker but not committed are gone from the
cloud, and acks it never sent are gone too; the box still holds every unacked event and
resends it, the broker keeps what arrives meanwhile for the ingest's persistent session,
and the cloud's store-once-by-event-id turns the resends into 'duplicate' acks.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.scale import Scale, variants
from tests.faults.stack import FaultStack
from tests.faults.verdict import assert_exactly_once, box_backlog, cloud_events

pytestmark = pytest.mark.slow


def _wait_for_events(stack: FaultStack, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while cloud_events(stack) < count:
        assert time.monotonic() < deadline, f"the drain never passed {count} events"
        time.sleep(0.003)


@pytest.mark.parametrize("scale", variants(Scale(orders=1500, faults=3),
                                           Scale(orders=20000, faults=40)))
def test_cloud_sigkill_mid_drain_loses_and_doubles_nothing(
    stack: FaultStack, seed: int, scale: Scale,
) -> None:
    rng = random.Random(seed)
    stack.sync.stop()  # the backlog: orders the box took while it was not syncing
    stack.edge.stop()  # (printing resumes after the kills: the drain is then all submits)
    for _ in range(scale.orders):
        stack.loader.submit()
    backlog = box_backlog(stack)[1]
    assert backlog == scale.orders and cloud_events(stack) == 0

    stack.sync.start()
    # Each kill comes a random number of stored events after the cloud (re)started, at
    # most 60% of the backlog in all. The drain runs at thousands of events a second
    # here, so the watch polls every few milliseconds and does not wait for readiness.
    step = max(1, int(backlog * 0.6 / scale.faults))
    kills = []
    for _ in range(scale.faults):
        _wait_for_events(stack, cloud_events(stack) + rng.randint(1, step))
        stack.cloud.kill9()
        stored = cloud_events(stack)
        kills.append(stored)
        assert backlog - stored >= 200, f"the kill came with only {backlog - stored} to drain"
        for _ in range(rng.randint(0, 5)):  # orders keep coming while the cloud is down
            stack.loader.submit()
        time.sleep(rng.uniform(0.2, 2.0))
        stack.cloud.start()
    stack.edge.start()
    verdict = assert_exactly_once(stack, stack.loader.submitted,
                                  context=f"seed={seed} killed at {kills} events stored")
    print(f"seed={seed}: backlog {backlog} events; cloud SIGKILLed at {kills} events stored; "
          f"{verdict}")
