"""Shared fixtures of the fault suite: a started stack and a logged, replayable seed.

Soak variants carry the `soak` marker; pyproject's addopts deselect them (`-m "not soak"`)
so the README's test command stays inside the CI budget; `make soak` runs them.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import FaultStack


@pytest.fixture
def seed() -> int:
    """The run's RNG seed: VOXERON_FAULT_SEED replays a run; printed so a failure can be."""
    value = int(os.environ.get("VOXERON_FAULT_SEED") or random.SystemRandom().randrange(2**31))
    print(f"fault seed: {value} (replay with VOXERON_FAULT_SEED={value})")
    return value


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[FaultStack]:
    with FaultStack(tmp_path / "stack") as s:
        s.start()
        yield s
