"""The `box` and `cloud` fixtures of the desired-state, command and reconciliation sync
tests: a fresh box store, and ingest plus the governed control API on the shared Mosquitto
with the box's tenant created. Import both fixtures into the test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.control_client import governed_cloud
from tests.integration.test_sync_to_cloud import MOSQUITTO, Box, Cloud, new_box


@pytest.fixture(name="box")
def box_fixture(tmp_path: Path) -> Iterator[Box]:
    with new_box(tmp_path) as b:
        yield b


@pytest.fixture(name="cloud")
def governed_cloud_fixture(tmp_path: Path, box: Box) -> Iterator[Cloud]:
    with governed_cloud(tmp_path, MOSQUITTO, box.identity.tenant_id) as c:
        yield c
