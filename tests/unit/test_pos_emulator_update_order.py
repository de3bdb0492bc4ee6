"""The POS emulator's UpdateOrder and RetrieveOrder speak Square's documented shape over
real HTTP: version checks, idempotent repeats, errors, and faults on demand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from voxeron.pos_emulator import ACCESS_TOKEN, LOCATION_ID, FakeSquare

AUTH = {"Authorization": f"Bearer {ACCESS_TOKEN}"}


@pytest.fixture
def square() -> Iterator[FakeSquare]:
    with FakeSquare() as fake:
        yield fake


def create(square: FakeSquare, key: str = "create-1") -> dict[str, Any]:
    answer = httpx.post(f"{square.url}/v2/orders", headers=AUTH, json={
        "idempotency_key": key, "order": {"location_id": LOCATION_ID, "reference_id": "R1",
                                          "line_items": []}})
    assert answer.status_code == 200
    return dict(answer.json()["order"])


def cancel(square: FakeSquare, order_id: str, version: int, key: str | None = "cancel-1",
           headers: dict[str, str] = AUTH) -> httpx.Response:
    body: dict[str, Any] = {"order": {"location_id": LOCATION_ID, "version": version,
                                      "state": "CANCELED"}}
    if key is not None:
        body["idempotency_key"] = key
    return httpx.put(f"{square.url}/v2/orders/{order_id}", headers=headers, json=body)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def test_cancel_increments_the_version_and_a_get_shows_it(square: FakeSquare) -> None:
    order = create(square)
    answer = cancel(square, order["id"], 1)
    assert answer.status_code == 200
    assert answer.json()["order"]["state"] == "CANCELED"
    assert answer.json()["order"]["version"] == 2
    shown = httpx.get(f"{square.url}/v2/orders/{order['id']}", headers=AUTH)
    assert shown.status_code == 200
    assert (shown.json()["order"]["state"], shown.json()["order"]["version"]) == ("CANCELED", 2)


def test_the_same_key_repeated_answers_the_same_without_a_second_change(
        square: FakeSquare) -> None:
    order = create(square)
    first = cancel(square, order["id"], 1)
    again = cancel(square, order["id"], 1)
    assert again.status_code == 200 and again.json() == first.json()
    [seen] = httpx.get(f"{square.url}/_fake/orders",
                       params={"reference_id": "R1"}).json()["orders"]
    assert seen["updates"] == 1 and seen["version"] == 2
    reused = cancel(square, order["id"], 2)  # same key, different body
    assert reused.status_code == 400 and error_code(reused) == "IDEMPOTENCY_KEY_REUSED"


def test_wrong_version_unknown_order_and_bad_bodies_are_refused(square: FakeSquare) -> None:
    order = create(square)
    stale = cancel(square, order["id"], 7)
    assert stale.status_code == 400 and error_code(stale) == "VERSION_MISMATCH"
    unknown = cancel(square, "no-such-order", 1)
    assert unknown.status_code == 404 and error_code(unknown) == "NOT_FOUND"
    assert httpx.get(f"{square.url}/v2/orders/no-such-order", headers=AUTH).status_code == 404
    no_version = httpx.put(f"{square.url}/v2/orders/{order['id']}", headers=AUTH,
                           json={"order": {"state": "CANCELED"}})
    assert no_version.status_code == 400
    assert error_code(no_version) == "MISSING_REQUIRED_PARAMETER"
    bad_state = httpx.put(f"{square.url}/v2/orders/{order['id']}", headers=AUTH,
                          json={"order": {"version": 1, "state": "GONE"}})
    assert bad_state.status_code == 400 and error_code(bad_state) == "INVALID_VALUE"
    anonymous = cancel(square, order["id"], 1, headers={})
    assert anonymous.status_code == 401
    assert httpx.get(f"{square.url}/v2/orders/{order['id']}").status_code == 401
    assert httpx.get(f"{square.url}/v2/orders/{order['id']}",
                     headers=AUTH).json()["order"]["state"] == "OPEN"  # nothing changed
    cancel(square, order["id"], 1, key=None)
    reopen = httpx.put(f"{square.url}/v2/orders/{order['id']}", headers=AUTH,
                       json={"order": {"version": 2, "state": "OPEN"}})
    assert reopen.status_code == 400 and error_code(reopen) == "INVALID_STATE_TRANSITION"


def test_queued_faults_hit_updates_as_they_hit_creates(square: FakeSquare) -> None:
    order = create(square)
    httpx.post(f"{square.url}/_fake/faults", json={"kind": "error500", "count": 1})
    httpx.post(f"{square.url}/_fake/faults", json={"kind": "rate_limit", "retry_after_s": 3})
    failed = cancel(square, order["id"], 1)
    assert failed.status_code == 500
    limited = cancel(square, order["id"], 1)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert cancel(square, order["id"], 1).status_code == 200
    [seen] = httpx.get(f"{square.url}/_fake/orders",
                       params={"reference_id": "R1"}).json()["orders"]
    assert seen["updates"] == 1
