"""`voxeron demo`: the whole product on one machine, one real phone call, checked end to end.

Starts the embedded MQTT broker, the printer and POS emulators, the cloud, its
integration worker and the four box processes as real OS processes; onboards the box's
tenant, enrols the box, configures its POS and rolls out an approved change through the
API (voxeron/demo_governance.py) until the box reports it applied; places a SIP call that
speaks a scripted order, then checks each step independently (order in the box's SQLite,
ticket on the printer, order in the cloud API, exactly one order in the POS, the order on
the dashboard) and exits 0 only if all happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from appliance.config import BoxIdentity
from appliance.store import LocalStore
from voxeron.caller import place_call
from voxeron.caller_voices import caller_voice
from voxeron.demo_governance import RESTAURANT, Api, Governed, StepFailed, govern, pos_order_count
from voxeron.ports import preferred_port, sip_options_ok, wait_tcp
from voxeron.pos_emulator import ACCESS_TOKEN, LOCATION_ID
from voxeron.supervisor import Supervisor

SCRIPT = [
    "Hi, I'd like a large pepperoni pizza and two cokes please.",
    "Can I also get a sushi roll?",
    "No, that's all.",
    "Yes, that's right.",
]


@dataclass
class DemoOptions:
    work_dir: Path
    keep_running: bool = False
    caller_voice: str = "piper"
    script: tuple[str, ...] = tuple(SCRIPT)


@dataclass
class Stack:
    """Ports and paths of one running demo stack."""

    work: Path
    mqtt_url: str
    cloud_port: int
    sip_port: int
    printer_port: int
    setup_port: int
    pos_port: int

    @property
    def box_db(self) -> Path:
        return self.work / "box" / "box.sqlite3"

    @property
    def tickets(self) -> Path:
        return self.work / "tickets"

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud_port}"

    @property
    def pos_url(self) -> str:
        return f"http://127.0.0.1:{self.pos_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud_port}/dashboard"


def _say(text: str) -> None:
    print(text, flush=True)


def _stamped(t0: float):  # type: ignore[no-untyped-def]
    """A printer of `[  12.34s] text` lines, seconds since t0 (the demo's start)."""
    return lambda text: _say(f"[{time.monotonic() - t0:6.2f}s] {text}")


def start_stack(sup: Supervisor, work: Path) -> Stack:
    logs = work / "logs"
    broker_url = os.environ.get("VOXERON_MQTT_URL")
    if not broker_url:
        port = preferred_port(1883)
        sup.start("broker", ["broker", "run", "--port", str(port)], logs / "broker.log")
        broker_url = f"mqtt://127.0.0.1:{port}"
    stack = Stack(work, broker_url, preferred_port(8000),
                  preferred_port(5060, socket.SOCK_DGRAM), preferred_port(9100),
                  preferred_port(8080), preferred_port(8765))
    sup.start("printer", ["printer-emulator", "--port", str(stack.printer_port),
                          "--out", str(stack.tickets)], logs / "printer.log")
    sup.start("pos", ["pos-emulator", "--port", str(stack.pos_port)], logs / "pos.log")
    cloud_env = {"VOXERON_CLOUD_DB_PATH": str(work / "cloud" / "cloud.sqlite3"),
                 "VOXERON_CLOUD_TENANT_CA_DIR": str(work / "cloud" / "ca")}
    sup.start("cloud", ["cloud", "run"], logs / "cloud.log", {
        **cloud_env,
        "VOXERON_CLOUD_PORT": str(stack.cloud_port), "VOXERON_CLOUD_MQTT_URL": broker_url,
    })
    # One worker on SQLite (its BEGIN IMMEDIATE is the lock): writes orders to the POS.
    sup.start("worker", ["cloud", "worker"], logs / "worker.log", cloud_env)
    sup.start("box", ["appliance", "run"], logs / "box.log", {
        "VOXERON_DATA_DIR": str(work / "box"), "VOXERON_MQTT_URL": broker_url,
        "VOXERON_VOICE_SIP_HOST": "127.0.0.1", "VOXERON_VOICE_SIP_PORT": str(stack.sip_port),
        "VOXERON_VOICE_RTP_HOST": "127.0.0.1",
        "VOXERON_PRINTER_URL": f"tcp://127.0.0.1:{stack.printer_port}",
        "VOXERON_SETUP_HOST": "127.0.0.1", "VOXERON_SETUP_PORT": str(stack.setup_port),
    })
    return stack


def wait_ready(sup: Supervisor, stack: Stack, timeout: float = 90.0) -> list[str]:
    """Names of the parts that did not come up in time (empty when all are ready)."""
    checks = {
        "broker": lambda t: wait_tcp(int(stack.mqtt_url.rsplit(":", 1)[1]), t),
        "printer": lambda t: wait_tcp(stack.printer_port, t),
        "pos": lambda t: wait_tcp(stack.pos_port, t),
        "cloud": lambda t: _http_ok(f"http://127.0.0.1:{stack.cloud_port}/healthz", t),
        "setup": lambda t: _http_ok(f"http://127.0.0.1:{stack.setup_port}/healthz", t),
        "voice": lambda t: sip_options_ok(stack.sip_port, t),
    }
    deadline = time.monotonic() + timeout
    missing = []
    for name, check in checks.items():
        if not check(max(1.0, deadline - time.monotonic())):
            missing.append(name)
        dead = [c.name for c in sup.dead()]
        if dead:
            return missing + [f"{d} (exited)" for d in dead]
    return missing


def _http_ok(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


async def _print_box_turns(db: Path, t0: float, stop: asyncio.Event) -> None:
    """Echo the box's side of the conversation (what it heard and said) as it happens."""
    seen = 0
    store = LocalStore(db)
    try:
        while True:
            calls = store.calls(1)
            turns = store.turns(calls[0]) if calls else []
            for t in turns[seen:]:
                who = "box heard " if t.speaker == "caller" else "agent says"
                lat = f"  (turn latency {t.latency_ms:.0f} ms)" if t.latency_ms else ""
                _say(f"[{time.monotonic() - t0:6.2f}s] {who}: {t.text}{lat}")
            seen = len(turns)
            if stop.is_set():
                return
            await asyncio.sleep(0.1)
    finally:
        store.close()


async def converse(stack: Stack, opts: DemoOptions,  # type: ignore[no-untyped-def]
                   t0: float | None = None):
    """The scripted call; lines are stamped from t0 (default: when the call starts)."""
    voice = caller_voice(opts.caller_voice)
    await asyncio.to_thread(voice.synthesize, "warm up")
    t0 = time.monotonic() if t0 is None else t0

    def on_event(kind: str, text: str, t: float) -> None:
        if kind == "caller_says":
            _say(f"[{t - t0:6.2f}s] caller says: {text}")

    stop = asyncio.Event()
    printer = asyncio.create_task(_print_box_turns(stack.box_db, t0, stop))
    try:
        report = await place_call(f"sip:order@127.0.0.1:{stack.sip_port}", list(opts.script),
                                  tts=voice, on_event=on_event, max_call_s=150)
    finally:
        await asyncio.sleep(0.3)
        stop.set()
        await printer
    return report


def verify(stack: Stack, timeout: float = 30.0) -> dict[str, object]:
    """Each step checked at its own source of truth; waits for the asynchronous ones."""
    store = LocalStore(stack.box_db)
    result: dict[str, object] = {"order": None, "ticket": False, "cloud": False}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            orders = store.orders(1)
            if orders:
                order = orders[0]
                result["order"] = order
                printed = sorted(stack.tickets.glob("ticket-*.txt"))
                result["ticket_file"] = printed[-1] if printed else None
                # The ticket's footer carries the order id: match on it, not on the number.
                result["ticket"] = store.action_status(order.order_id) == "succeeded" and any(
                    order.order_id in p.read_text() for p in printed
                )
                cloud = _get_json(f"http://127.0.0.1:{stack.cloud_port}/api/v1/orders/{order.order_id}")
                result["cloud"] = bool(cloud and cloud.get("order_id") == order.order_id)
                result["cloud_doc"] = cloud
                if result["ticket"] and result["cloud"]:
                    break
            time.sleep(0.3)
    finally:
        store.close()
    return result


def verify_downstream(stack: Stack, gov: Governed, ops: str, order_id: str,
                      timeout: float = 45.0) -> dict[str, object]:
    """The order's way out of the cloud: the worker's POS write succeeded, the POS emulator
    holds exactly one order for it, and the dashboard's device page lists it."""
    api = Api(stack.cloud_url)
    base = f"/api/v1/tenants/{gov.tenant_id}"
    result: dict[str, object] = {"pos_action": None, "pos_orders": None, "dashboard": False}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            actions = api.call("GET", f"{base}/integration-actions", gov.author)
        except StepFailed:
            actions = []
        mine = [a for a in actions if a.get("order_id") == order_id and a.get("kind") == "pos_write"]
        result["pos_action"] = mine[0]["state"] if mine else None
        if result["pos_action"] == "succeeded":
            break
        time.sleep(0.3)
    result["pos_orders"] = pos_order_count(stack.pos_url, order_id)
    try:
        page = api.call("GET", f"/dashboard/devices/{gov.tenant_id}/{gov.device_id}", ops)
        result["dashboard"] = f'data-order-id="{order_id}"' in str(page)
    except StepFailed as exc:
        _say(f"dashboard check failed: {exc}")
    return result


def greeting(stack: Stack) -> str:
    """The box's first spoken line of its last call, read from the box's own store."""
    store = LocalStore(stack.box_db)
    try:
        calls = store.calls(1)
        turns = [t for t in store.turns(calls[0]) if t.speaker == "agent"] if calls else []
        return turns[0].text if turns else ""
    finally:
        store.close()


def dashboard_token(stack: Stack) -> str | None:
    """An ops token for signing in to the dashboard (as `voxeron cloud token create --ops`)."""
    from datetime import UTC, datetime

    from cloud.config import CloudConfig
    from cloud.control.ops_tokens import create_cli_token

    try:
        return create_cli_token(CloudConfig(db_path=stack.work / "cloud" / "cloud.sqlite3"),
                                datetime.now(UTC), tenant_id=None, name="demo dashboard",
                                expires_in_days=1).secret
    except Exception as exc:  # the demo's verdict does not depend on the dashboard
        _say(f"could not create a dashboard token: {exc}")
        return None


def screenshot(url: str, out: Path, token: str) -> bool:
    """Sign in and save a PNG of the dashboard with headless Chromium (via Playwright)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return False
    if not chromium:
        return False
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url, timeout=30_000)  # redirects to the login page
                page.fill("#token", token)
                page.click("#sign-in")
                page.wait_for_load_state()
                page.screenshot(path=str(out), full_page=True)
            finally:
                browser.close()
    except Exception as exc:  # no browser here: the demo still reports its result
        _say(f"dashboard screenshot failed: {exc}")
        return False
    return out.exists() and out.stat().st_size > 0


def run_demo(opts: DemoOptions) -> int:
    work = opts.work_dir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    sup = Supervisor()
    t_start = time.monotonic()
    try:
        _say(f"voxeron demo: starting broker, printer emulator, cloud and box (logs: {work}/logs)")
        stack = start_stack(sup, work)
        missing = wait_ready(sup, stack)
        if missing:
            _say(f"DEMO FAILED: not ready: {', '.join(missing)}; see {work}/logs and {work}/box/logs")
            return 1
        _say(f"ready in {time.monotonic() - t_start:.1f}s: SIP udp/{stack.sip_port}, printer "
             f"tcp/{stack.printer_port}, cloud http://127.0.0.1:{stack.cloud_port}, box setup UI "
             f"http://127.0.0.1:{stack.setup_port}/, MQTT {stack.mqtt_url}")
        stamp = _stamped(t_start)
        ops = dashboard_token(stack)
        if not ops:
            _say("DEMO FAILED: could not create the ops token")
            return 1
        ids = BoxIdentity()
        try:
            gov = govern(Api(stack.cloud_url), ops, ids.tenant_id, ids.device_id, stack.pos_url,
                         ACCESS_TOKEN, LOCATION_ID, work / "box" / "enrolment", stamp)
        except StepFailed as exc:
            _say(f"DEMO FAILED: {exc}; see {work}/logs and {work}/box/logs")
            return 1
        stamp(f"placing a call to sip:order@127.0.0.1:{stack.sip_port} ...")
        report = asyncio.run(converse(stack, opts, t_start))
        checks = verify(stack)
        order = checks["order"]
        if order is not None:
            checks.update(verify_downstream(stack, gov, ops, order.order_id))  # type: ignore[attr-defined]
            stamp(f"POS emulator holds {checks['pos_orders']} order(s) for "
                  f"{order.order_id} (worker action {checks['pos_action']}); "  # type: ignore[attr-defined]
                  f"dashboard device page {'lists' if checks['dashboard'] else 'does NOT list'} it")
        checks["greeting"] = greeting(stack)
        checks["version"] = gov.version
        return _report(stack, report, checks, time.monotonic() - t_start, opts, sup, ops)
    finally:
        if opts.keep_running and sys.stdin.isatty():
            _say("stack left running; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        sup.stop_all()


def _report(stack: Stack, report, checks: dict[str, object], total_s: float,  # type: ignore[no-untyped-def]
            opts: DemoOptions, sup: Supervisor, token: str) -> int:
    order = checks["order"]
    if checks.get("ticket_file"):
        _say("\nkitchen ticket as printed:\n" + checks["ticket_file"].read_text())  # type: ignore[union-attr]
        _say(f"ticket image: {checks['ticket_file'].with_suffix('.png')}")  # type: ignore[union-attr]
    shot = stack.work / "dashboard.png"
    if screenshot(stack.dashboard_url, shot, token):
        _say(f"dashboard screenshot: {shot}")
    _say(f"fleet dashboard: {stack.dashboard_url}" + ("" if opts.keep_running else
                                                       "  (run with --keep-running to browse it)"))
    _say(f"  sign in with the ops token {token} (valid 1 day)")
    store = LocalStore(stack.box_db)
    try:
        box_ms = [round(t.latency_ms) for c in store.calls(1) for t in store.turns(c)
                  if t.speaker == "agent" and t.latency_ms]
    finally:
        store.close()
    caller_ms = [round(t.latency_ms) for t in report.turns if t.latency_ms is not None]
    applied = RESTAURANT in str(checks.get("greeting", ""))
    pos_once = checks.get("pos_orders") == 1 and checks.get("pos_action") == "succeeded"
    ok = (bool(order) and bool(checks["ticket"]) and bool(checks["cloud"]) and applied
          and pos_once and bool(checks.get("dashboard")))
    number = getattr(order, "number", "-")
    order_id = getattr(order, "order_id", "-")
    _say(
        f"\n{'DEMO OK' if ok else 'DEMO FAILED'}: order {order_id} #{number} | ticket "
        f"{'printed' if checks['ticket'] else 'NOT printed'} | cloud "
        f"{'synced' if checks['cloud'] else 'NOT synced'} | rollout v{checks['version']} "
        f"{'applied (greeting names ' + repr(RESTAURANT) + ')' if applied else 'NOT heard'} | "
        f"POS orders {checks.get('pos_orders')} | dashboard "
        f"{'shows it' if checks.get('dashboard') else 'does NOT show it'} | agent turn latency (box, end of "
        f"speech to first audio) ms {box_ms} | voice-to-voice at the caller ms {caller_ms} | "
        f"total {total_s:.1f}s"
    )
    return 0 if ok else 1
