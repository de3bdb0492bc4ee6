"""`voxeron demo`: the whole product on one machine, one real phone call, checked end to end.

Starts the embedded MQTT broker, the printer emulator, the cloud and the four box
processes as real OS processes, places a SIP call that speaks a scripted order, then
checks each step independently (order in the box's SQLite, ticket on the printer, order
in the cloud API) and exits 0 only if all happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from appliance.store import LocalStore
from voxeron.caller import place_call
from voxeron.caller_voices import caller_voice
from voxeron.ports import preferred_port, sip_options_ok, wait_tcp
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

    @property
    def box_db(self) -> Path:
        return self.work / "box" / "box.sqlite3"

    @property
    def tickets(self) -> Path:
        return self.work / "tickets"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud_port}/dashboard"


def _say(text: str) -> None:
    print(text, flush=True)


def start_stack(sup: Supervisor, work: Path) -> Stack:
    logs = work / "logs"
    broker_url = os.environ.get("VOXERON_MQTT_URL")
    if not broker_url:
        port = preferred_port(1883)
        sup.start("broker", ["broker", "run", "--port", str(port)], logs / "broker.log")
        broker_url = f"mqtt://127.0.0.1:{port}"
    stack = Stack(work, broker_url, preferred_port(8000),
                  preferred_port(5060, socket.SOCK_DGRAM), preferred_port(9100),
                  preferred_port(8080))
    sup.start("printer", ["printer-emulator", "--port", str(stack.printer_port),
                          "--out", str(stack.tickets)], logs / "printer.log")
    sup.start("cloud", ["cloud", "run"], logs / "cloud.log", {
        "VOXERON_CLOUD_DB_PATH": str(work / "cloud" / "cloud.sqlite3"),
        "VOXERON_CLOUD_PORT": str(stack.cloud_port), "VOXERON_CLOUD_MQTT_URL": broker_url,
    })
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


async def converse(stack: Stack, opts: DemoOptions):  # type: ignore[no-untyped-def]
    voice = caller_voice(opts.caller_voice)
    await asyncio.to_thread(voice.synthesize, "warm up")
    t0 = time.monotonic()

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


def screenshot(url: str, out: Path) -> bool:
    """Save a PNG of the dashboard with headless Chromium when it is installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return False
    profile = out.parent / "chromium-profile"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,900",
           f"--screenshot={out}", url]
    try:
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
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
        _say(f"placing a call to sip:order@127.0.0.1:{stack.sip_port} ...")
        report = asyncio.run(converse(stack, opts))
        checks = verify(stack)
        return _report(stack, report, checks, time.monotonic() - t_start, opts, sup)
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
            opts: DemoOptions, sup: Supervisor) -> int:
    order = checks["order"]
    if checks.get("ticket_file"):
        _say("\nkitchen ticket as printed:\n" + checks["ticket_file"].read_text())  # type: ignore[union-attr]
        _say(f"ticket image: {checks['ticket_file'].with_suffix('.png')}")  # type: ignore[union-attr]
    shot = stack.work / "dashboard.png"
    if screenshot(stack.dashboard_url, shot):
        _say(f"dashboard screenshot: {shot}")
    _say(f"fleet dashboard: {stack.dashboard_url}" + ("" if opts.keep_running else
                                                       "  (run with --keep-running to browse it)"))
    store = LocalStore(stack.box_db)
    try:
        box_ms = [round(t.latency_ms) for c in store.calls(1) for t in store.turns(c)
                  if t.speaker == "agent" and t.latency_ms]
    finally:
        store.close()
    caller_ms = [round(t.latency_ms) for t in report.turns if t.latency_ms is not None]
    ok = bool(order) and bool(checks["ticket"]) and bool(checks["cloud"])
    number = getattr(order, "number", "-")
    order_id = getattr(order, "order_id", "-")
    _say(
        f"\n{'DEMO OK' if ok else 'DEMO FAILED'}: order {order_id} #{number} | ticket "
        f"{'printed' if checks['ticket'] else 'NOT printed'} | cloud "
        f"{'synced' if checks['cloud'] else 'NOT synced'} | agent turn latency (box, end of "
        f"speech to first audio) ms {box_ms} | voice-to-voice at the caller ms {caller_ms} | "
        f"total {total_s:.1f}s"
    )
    return 0 if ok else 1
