"""kill -9 of voxeron-edge and voxeron-sync at random points while orders keep coming.

Each kill is followed by a restart, as systemd (Restart=always) does on the box. The
store is the truth both processes resume from: a ticket action left in_flight is claimed
again, an event left unacked is sent again and the cloud answers 'duplicate'.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.scale import Scale, variants
from tests.faults.stack import FaultStack
from tests.faults.verdict import assert_exactly_once

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scale", variants(Scale(orders=200, faults=16),
                                           Scale(orders=2000, faults=160)))
def test_kill9_edge_and_sync_loses_and_doubles_nothing(
    stack: FaultStack, seed: int, scale: Scale,
) -> None:
    rng = random.Random(seed)
    kill_after = set(rng.sample(range(1, scale.orders), scale.faults))
    plan = []
    for i in range(scale.orders):
        stack.loader.submit()
        time.sleep(rng.uniform(0, 0.02))
        if i in kill_after:
            victims = rng.choice([[stack.edge], [stack.sync], [stack.edge, stack.sync]])
            time.sleep(rng.uniform(0, 0.3))  # somewhere inside printing or draining
            for proc in victims:
                proc.restart_after_kill()
            plan.append((i, "+".join(p.name for p in victims)))
    context = f"seed={seed} orders={scale.orders} kills (after order index, victims)={plan}"
    verdict = assert_exactly_once(stack, stack.loader.submitted, context=context)
    assert stack.edge.kills + stack.sync.kills >= scale.faults
    assert stack.edge.alive and stack.sync.alive, "a restarted box process died on its own"
    print(f"seed={seed}: {verdict}; edge kills {stack.edge.kills}, sync kills {stack.sync.kills}")
