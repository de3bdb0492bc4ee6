"""A POS emulator for the demo and tests: a real HTTP server speaking the Square Orders API shape.

`voxeron pos-emulator --port N` runs it; the demo points the tenant's Square integration
at it and checks through `/_fake/orders` that the order arrived exactly once.
`POST /v2/orders` (Bearer auth, JSON body `{idempotency_key, order: {location_id,
reference_id, line_items: [{name, quantity (a string), base_price_money: {amount,
currency}, note}]}}`) answers `{order: {id, location_id, reference_id, line_items, state,
version, total_money, created_at, updated_at}}`. As Square documents, a repeated
idempotency key with the same body returns the order created the first time, never a
second one; the same key with a different body is refused (`IDEMPOTENCY_KEY_REUSED`).
Errors use Square's shape `{errors: [{category, code, detail, field?}]}`.
`PUT /v2/orders/{id}` (UpdateOrder, `{idempotency_key, order: {location_id, version,
state}}`) changes the state: unknown order 404, a `version` other than the order's 400
`VERSION_MISMATCH`, an applied change increments the version; a repeated key with the same
body answers the first response again without a second change. `GET /v2/orders/{id}`
(RetrieveOrder) shows the order as it is now.

Faults on demand (not part of Square; under `/_fake/`): `POST /_fake/faults` queues
faults that the next order requests consume one each:
`{"kind": "error500" | "rate_limit" | "hang" | "hang_after_create" | "slow", "count": N,
"retry_after_s": s, "delay_ms": ms}`; creates and updates consume them alike
(`hang_after_create` on an update hangs after applying it). `GET /_fake/orders?reference_id=R`
says how many distinct orders exist for R (the exactly-once check) and each one's state,
version and number of applied updates; `GET /_fake/stats` summarises all.
"Down" is the test stopping the server (`stop()`), so connections are refused, then
`start()` again on the same port with the orders it already holds.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

ACCESS_TOKEN = "EAAAfake-square-sandbox-token"
LOCATION_ID = "L8FAKESQUARE01"
_FAULT_KINDS = ("error500", "rate_limit", "hang", "hang_after_create", "slow")


def _error(category: str, code: str, detail: str, fld: str | None = None) -> dict[str, Any]:
    err = {"category": category, "code": code, "detail": detail}
    if fld:
        err["field"] = fld
    return {"errors": [err]}


@dataclass
class Fault:
    kind: str
    retry_after_s: float = 1.0
    delay_ms: int = 0
    hang_s: float = 5.0


@dataclass
class SquareState:
    """Everything the fake POS remembers; survives stop()/start() like a real POS would."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)   # order id -> order
    by_key: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (body hash, id)
    updates_by_key: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    updates: Counter[str] = field(default_factory=Counter)  # order id -> applied updates
    faults: deque[Fault] = field(default_factory=deque)
    requests: int = 0
    replays: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def distinct_orders(self, reference_id: str) -> int:
        return sum(1 for o in self.orders.values() if o.get("reference_id") == reference_id)

    def orders_of(self, reference_id: str) -> list[dict[str, Any]]:
        """Each order for `reference_id` as the exactly-once checks need it."""
        return [{"id": o["id"], "state": o["state"], "version": o["version"],
                 "updates": self.updates[o["id"]]}
                for o in self.orders.values() if o.get("reference_id") == reference_id]


def _validate(body: Any) -> dict[str, Any] | None:
    """Square's INVALID_REQUEST_ERROR answers for a malformed create-order body."""
    if not isinstance(body, dict):
        return _error("INVALID_REQUEST_ERROR", "INVALID_BODY", "body must be a JSON object")
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not 1 <= len(key) <= 192:
        return _error("INVALID_REQUEST_ERROR", "MISSING_REQUIRED_PARAMETER",
                      "idempotency_key must be 1-192 characters", "idempotency_key")
    order = body.get("order")
    if not isinstance(order, dict) or not order.get("location_id"):
        return _error("INVALID_REQUEST_ERROR", "MISSING_REQUIRED_PARAMETER",
                      "order.location_id is required", "order.location_id")
    if order["location_id"] != LOCATION_ID:
        return _error("INVALID_REQUEST_ERROR", "NOT_FOUND",
                      f"location {order['location_id']} not found", "order.location_id")
    for i, li in enumerate(order.get("line_items") or []):
        money = li.get("base_price_money") if isinstance(li, dict) else None
        qty = li.get("quantity") if isinstance(li, dict) else None
        if not isinstance(qty, str) or not qty.isdigit() or int(qty) < 1:
            return _error("INVALID_REQUEST_ERROR", "INVALID_VALUE",
                          "quantity must be a positive integer string",
                          f"order.line_items[{i}].quantity")
        if not isinstance(money, dict) or not isinstance(money.get("amount"), int) \
                or not isinstance(money.get("currency"), str):
            return _error("INVALID_REQUEST_ERROR", "INVALID_VALUE",
                          "base_price_money needs an integer amount and a currency",
                          f"order.line_items[{i}].base_price_money")
    return None


def _create(state: SquareState, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    key = body["idempotency_key"]
    fingerprint = json.dumps(body["order"], sort_keys=True)
    with state.lock:
        seen = state.by_key.get(key)
        if seen is not None:
            if seen[0] != fingerprint:
                return 400, _error("INVALID_REQUEST_ERROR", "IDEMPOTENCY_KEY_REUSED",
                                   "the idempotency key was used with a different request")
            state.replays += 1
            return 200, {"order": state.orders[seen[1]]}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        src = body["order"]
        items, total, currency = [], 0, "USD"
        for li in src.get("line_items") or []:
            money = li["base_price_money"]
            line_total = money["amount"] * int(li["quantity"])
            total += line_total
            currency = money["currency"]
            items.append({"uid": secrets.token_hex(8), "name": li.get("name"),
                          "quantity": li["quantity"], "note": li.get("note"),
                          "base_price_money": money,
                          "total_money": {"amount": line_total, "currency": currency}})
        order = {"id": secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22],
                 "location_id": src["location_id"], "reference_id": src.get("reference_id"),
                 "source": src.get("source"), "line_items": items, "state": "OPEN",
                 "version": 1, "total_money": {"amount": total, "currency": currency},
                 "created_at": now, "updated_at": now}
        state.orders[order["id"]] = order
        state.by_key[key] = (fingerprint, order["id"])
        return 200, {"order": order}


_STATES = ("OPEN", "COMPLETED", "CANCELED")


def _validate_update(body: Any) -> dict[str, Any] | None:
    """Square's INVALID_REQUEST_ERROR answers for a malformed UpdateOrder body."""
    if not isinstance(body, dict):
        return _error("INVALID_REQUEST_ERROR", "INVALID_BODY", "body must be a JSON object")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 192):
        return _error("INVALID_REQUEST_ERROR", "INVALID_VALUE",
                      "idempotency_key must be 1-192 characters", "idempotency_key")
    order = body.get("order")
    if not isinstance(order, dict):
        return _error("INVALID_REQUEST_ERROR", "MISSING_REQUIRED_PARAMETER",
                      "order is required", "order")
    if not isinstance(order.get("version"), int) or isinstance(order.get("version"), bool):
        return _error("INVALID_REQUEST_ERROR", "MISSING_REQUIRED_PARAMETER",
                      "order.version (an integer) is required", "order.version")
    if order.get("state") not in _STATES:
        return _error("INVALID_REQUEST_ERROR", "INVALID_VALUE",
                      f"order.state must be one of {', '.join(_STATES)}", "order.state")
    return None


def _update(state: SquareState, order_id: str, body: dict[str, Any],
            ) -> tuple[int, dict[str, Any]]:
    key = body.get("idempotency_key")
    fingerprint = json.dumps({"id": order_id, "order": body["order"]}, sort_keys=True)
    change = body["order"]
    with state.lock:
        if key is not None and key in state.updates_by_key:
            seen_fingerprint, answer = state.updates_by_key[key]
            if seen_fingerprint != fingerprint:
                return 400, _error("INVALID_REQUEST_ERROR", "IDEMPOTENCY_KEY_REUSED",
                                   "the idempotency key was used with a different request")
            state.replays += 1
            return 200, answer
        order = state.orders.get(order_id)
        if order is None:
            return 404, _error("INVALID_REQUEST_ERROR", "NOT_FOUND",
                               f"order {order_id} not found")
        if change.get("location_id", order["location_id"]) != order["location_id"]:
            return 400, _error("INVALID_REQUEST_ERROR", "INVALID_VALUE",
                               "location_id does not match the order", "order.location_id")
        if change["version"] != order["version"]:
            return 400, _error("INVALID_REQUEST_ERROR", "VERSION_MISMATCH",
                               f"order is at version {order['version']}, not "
                               f"{change['version']}", "order.version")
        if order["state"] != "OPEN" and change["state"] != order["state"]:
            return 400, _error("INVALID_REQUEST_ERROR", "INVALID_STATE_TRANSITION",
                               f"a {order['state']} order cannot become {change['state']}",
                               "order.state")
        if change["state"] != order["state"]:
            order["state"] = change["state"]
            order["version"] += 1
            order["updated_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            state.updates[order_id] += 1
        answer = {"order": dict(order)}
        if key is not None:
            state.updates_by_key[key] = (fingerprint, answer)
        return 200, answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None,
              ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError:
            return None

    def do_GET(self) -> None:
        url = urlparse(self.path)
        state = self.server.state
        if url.path == "/_fake/orders":
            ref = parse_qs(url.query).get("reference_id", [""])[0]
            with state.lock:
                self._send(200, {"reference_id": ref,
                                 "distinct_orders": state.distinct_orders(ref),
                                 "orders": state.orders_of(ref)})
        elif url.path == "/_fake/stats":
            with state.lock:
                refs = Counter(o.get("reference_id") for o in state.orders.values())
                self._send(200, {"orders": len(state.orders), "requests": state.requests,
                                 "replays": state.replays,
                                 "updates": sum(state.updates.values()),
                                 "orders_by_reference": dict(refs),
                                 "faults_left": len(state.faults)})
        elif _order_path(url.path) is not None:
            self._retrieve_order(_order_path(url.path) or "")
        else:
            self._send(404, _error("INVALID_REQUEST_ERROR", "NOT_FOUND", "no such endpoint"))

    def do_POST(self) -> None:
        url = urlparse(self.path)
        if url.path == "/_fake/faults":
            self._queue_faults(self._body())
        elif url.path == "/v2/orders":
            self._create_order()
        else:
            self._send(404, _error("INVALID_REQUEST_ERROR", "NOT_FOUND", "no such endpoint"))

    def _queue_faults(self, spec: Any) -> None:
        if not isinstance(spec, dict) or spec.get("kind") not in _FAULT_KINDS:
            self._send(400, {"error": f"kind must be one of {_FAULT_KINDS}"})
            return
        fault = Fault(kind=spec["kind"], retry_after_s=float(spec.get("retry_after_s", 1)),
                      delay_ms=int(spec.get("delay_ms", 0)), hang_s=float(spec.get("hang_s", 5)))
        with self.server.state.lock:
            self.server.state.faults.extend([fault] * int(spec.get("count", 1)))
        self._send(200, {"queued": int(spec.get("count", 1))})

    def do_PUT(self) -> None:
        order_id = _order_path(urlparse(self.path).path)
        if order_id is None:
            self._send(404, _error("INVALID_REQUEST_ERROR", "NOT_FOUND", "no such endpoint"))
            return
        self._write(_validate_update,
                    lambda body: _update(self.server.state, order_id, body))

    def _create_order(self) -> None:
        self._write(_validate, lambda body: _create(self.server.state, body))

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}":
            return True
        self._send(401, _error("AUTHENTICATION_ERROR", "UNAUTHORIZED",
                               "this request could not be authorized"))
        return False

    def _retrieve_order(self, order_id: str) -> None:
        state = self.server.state
        if not self._authorized():
            return
        with state.lock:
            order = state.orders.get(order_id)
            answer = {"order": dict(order)} if order is not None else None
        if answer is None:
            self._send(404, _error("INVALID_REQUEST_ERROR", "NOT_FOUND",
                                   f"order {order_id} not found"))
        else:
            self._send(200, answer)

    def _write(self, validate: Callable[[Any], dict[str, Any] | None],
               apply: Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]) -> None:
        """One create or update request: auth, the next queued fault, validation, apply."""
        state = self.server.state
        body = self._body()
        with state.lock:
            state.requests += 1
            fault = state.faults.popleft() if state.faults else None
        if not self._authorized():
            return
        if fault is not None and fault.kind == "error500":
            self._send(500, _error("API_ERROR", "INTERNAL_SERVER_ERROR", "injected 500"))
            return
        if fault is not None and fault.kind == "rate_limit":
            self._send(429, _error("RATE_LIMIT_ERROR", "RATE_LIMITED", "slow down"),
                       {"Retry-After": f"{fault.retry_after_s:g}"})
            return
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.hang_s)  # the client has given up by now; answer nothing useful
            self.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_ms / 1000)
        invalid = validate(body)
        if invalid is not None:
            self._send(400, invalid)
            return
        status, answer = apply(body)
        if fault is not None and fault.kind == "hang_after_create":
            time.sleep(fault.hang_s)  # applied, but the answer never reaches the client in time
            self.close_connection = True
            return
        self._send(status, answer)


def _order_path(path: str) -> str | None:
    """The order id of `/v2/orders/{id}` (None for any other path)."""
    prefix = "/v2/orders/"
    if not path.startswith(prefix):
        return None
    order_id = path[len(prefix):]
    return order_id if order_id and "/" not in order_id else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], state: SquareState) -> None:
        self.state = state
        super().__init__(addr, _Handler)


class FakeSquare:
    """Start/stop the fake POS on a loopback port; its orders survive a restart."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.state = SquareState()
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeSquare:
        self._server = _Server((self.host, self.port), self.state)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="fake-square")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused (the POS is down)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSquare:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_emulator(host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until SIGTERM/SIGINT; the orders live in memory for the process's life."""
    square = FakeSquare(port, host).start()
    print(f"POS emulator (Square Orders API) at {square.url}; access token {ACCESS_TOKEN}, "
          f"location {LOCATION_ID}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    square.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args()
    run_emulator(args.host, args.port)


if __name__ == "__main__":
    main()
