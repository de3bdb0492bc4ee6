"""The governed half of `voxeron demo`: onboard, enrol, integrate, roll out, all via the API.

Every step goes through the public control-plane API exactly as an operator would (ops
token for the tenant, two tenant tokens so the approver is not the author), and each is
checked by reading the result back from its source before the next one starts. A step
that fails stops the demo with the API's answer, so a red demo says what broke.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cloud.control.tenant_ca import make_device_csr

RESTAURANT = "Tony's Pizza Napoli"  # the rolled-out change the caller hears in the greeting
STAGE = "dev"
DEMO_OVERLAY = Path(__file__).parents[1] / "blueprints" / "tenants" / "demo_pizza.yaml"


class StepFailed(Exception):
    """A governed step whose result could not be verified; the message says which and why."""


@dataclass
class Api:
    """A tiny JSON client for the cloud API on loopback."""

    base: str

    def call(self, method: str, path: str, token: str, body: Any = None,
             expect: int = 200) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:
            raise StepFailed(f"{method} {path}: {exc}") from None
        if status != expect:
            raise StepFailed(f"{method} {path}: HTTP {status} {raw[:300].decode('utf-8', 'replace')}")
        ctype_json = raw[:1] in (b"{", b"[")
        return json.loads(raw) if ctype_json else raw.decode("utf-8", "replace")


@dataclass
class Governed:
    """What the governed steps set up, for the later checks."""

    tenant_id: str
    device_id: str
    author: str
    approver: str
    version: int


def govern(api: Api, ops: str, tenant_id: str, device_id: str, pos_url: str,
           pos_token: str, pos_location: str, enrol_dir: Path,
           say: Callable[[str], None], apply_timeout_s: float = 60.0) -> Governed:
    """Onboard the box's tenant, enrol the box, configure its POS, roll out a change and
    wait until the box reports it applied. Raises StepFailed on the first unverified step."""
    base = f"/api/v1/tenants/{tenant_id}"
    made = api.call("POST", "/api/v1/tenants", ops, {
        "tenant_id": tenant_id, "name": "Tony's Pizza (demo)",
        "quotas": {"api_requests_per_s": 50}}, expect=201)
    if api.call("GET", base, ops).get("tenant_id") != made["tenant_id"]:
        raise StepFailed("tenant created but not readable back")
    say(f"tenant {tenant_id} onboarded (ops token, POST /api/v1/tenants)")

    author, approver = (api.call("POST", f"{base}/tokens", ops, {
        "name": f"demo {who}", "scopes": ["tenant:read", "tenant:write"],
        "expires_in_days": 1}, expect=201)["secret"] for who in ("author", "approver"))
    listed = {t["name"] for t in api.call("GET", f"{base}/tokens", author)}
    if not {"demo author", "demo approver"} <= listed:
        raise StepFailed(f"tenant tokens not listed: {sorted(listed)}")
    say("two tenant tokens minted: an author and a second principal to approve")

    creds = make_device_csr(tenant_id, device_id)
    enrolment = api.call("POST", f"{base}/devices", author, {
        "device_id": device_id, "csr_pem": creds.cert_pem.decode()}, expect=201)
    enrol_dir.mkdir(parents=True, exist_ok=True)
    (enrol_dir / "device.key").write_bytes(creds.key_pem)
    (enrol_dir / "device.key").chmod(0o600)
    (enrol_dir / "device.crt").write_text(enrolment["certificate_pem"])
    (enrol_dir / "tenant-ca.crt").write_text(enrolment["ca_certificate_pem"])
    device = api.call("GET", f"{base}/devices/{device_id}", author)
    if device.get("status") != "active" or device.get("serial") != enrolment["serial"]:
        raise StepFailed(f"device not active after enrolment: {device}")
    api.call("PUT", f"{base}/devices/{device_id}/stage", author, {"stage": STAGE})
    say(f"box {device_id} enrolled (CSR signed by the tenant CA, serial {enrolment['serial']}; "
        f"certificate in {enrol_dir}; the demo broker stays plain MQTT on loopback, so the "
        f"box does not present it) and labelled stage {STAGE}")

    api.call("PUT", f"{base}/integrations/pos", author, {"config": {
        "kind": "square", "base_url": pos_url, "access_token": pos_token,
        "location_id": pos_location}})
    views = api.call("GET", f"{base}/integrations", author)
    if not any(v.get("integration_id") == "pos" and v.get("enabled") for v in views):
        raise StepFailed(f"Square integration not listed as enabled: {views}")
    say(f"Square POS integration configured -> POS emulator {pos_url}")

    overlay = yaml.safe_load(DEMO_OVERLAY.read_text())
    overlay["restaurant"] = RESTAURANT
    version = int(api.call("POST", f"{base}/rollouts", author, {"overlay": overlay},
                           expect=201)["version"])
    api.call("POST", f"{base}/rollouts/{version}/submit", author)
    api.call("POST", f"{base}/rollouts/{version}/approve", approver)
    api.call("POST", f"{base}/rollouts/{version}/promote", author, {"stage": STAGE})
    say(f"menu/overlay change v{version} (restaurant renamed to {RESTAURANT!r}): drafted, "
        f"submitted, approved by the second token, promoted to {STAGE}")

    deadline = time.monotonic() + apply_timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = api.call("GET", f"{base}/rollouts/{version}/status", author)
        mine = [d for d in status.get("devices", []) if d.get("device_id") == device_id]
        if mine and mine[0]["state"] == "applied":
            say(f"box reports rollout v{version} applied (applied_version "
                f"{mine[0]['applied_version']}, GET .../rollouts/{version}/status)")
            return Governed(tenant_id, device_id, author, approver, version)
        if mine and mine[0]["state"] in ("rejected", "superseded"):
            raise StepFailed(f"rollout v{version} {mine[0]['state']} on the box: {mine[0]}")
        time.sleep(0.5)
    raise StepFailed(f"rollout v{version} not applied within {apply_timeout_s:.0f}s: {status}")


def pos_order_count(pos_url: str, order_id: str) -> int | None:
    """Distinct orders the POS emulator holds for this reference id (None if unreachable)."""
    try:
        with urllib.request.urlopen(f"{pos_url}/_fake/orders?reference_id={order_id}",
                                    timeout=2) as r:
            return int(json.loads(r.read())["distinct_orders"])
    except (OSError, ValueError, KeyError):
        return None
