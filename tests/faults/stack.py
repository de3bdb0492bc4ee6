"""The fault-test stack: broker, printer, cloud and the box's edge and sync as real processes.

Everything a deployed box has except the voice process: orders go straight into the
box's store the way order.submit writes them (`OrderLoader`). Tenant and device ids are
fresh per stack, and every part gets its own port, files and log, so stacks never meet.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from appliance.store import LocalStore
from sync.contracts.messages import DeviceStatus
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id
from sync.topics import DeviceTopics
from tests.faults.broker import fault_broker
from tests.faults.processes import VoxeronProcess
from tests.integration.mosquitto_broker import free_port, port_open

LINES = [
    OrderLine(line_id="l1", item_id="pizza_pepperoni", name="Pepperoni pizza", quantity=1,
              size="large", unit_price_cents=1699),
    OrderLine(line_id="l2", item_id="coke", name="Coke", quantity=2, unit_price_cents=250),
]


def wait_until(check: Callable[[], object], timeout: float, what: str,
               detail: Callable[[], str] = lambda: "") -> None:
    """Poll `check` until it is true; AssertionError naming `what` (and `detail()`) if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}. {detail()}")


@dataclass(frozen=True)
class StackTuning:
    """Short timers, so a fault plays out in seconds; production defaults are longer."""

    ack_timeout_s: float = 2.0
    health_interval_s: float = 1.0
    printer_poll_s: float = 0.05


def raw_client(url_port: int, client_id: str | None = None) -> paho.Client:
    """A bare paho client on the private broker, connected and looping (tests' own sender)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or new_id("job"),
                         clean_session=True, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", url_port, keepalive=30)
    client.loop_start()
    return client


class OrderLoader:
    """Submits orders into the box's store as the voice process's order.submit does."""

    def __init__(self, db_path: Path, tenant_id: str, device_id: str) -> None:
        self.tenant_id, self.device_id = tenant_id, device_id
        self.store = LocalStore(db_path)
        self.submitted: list[Order] = []

    def submit(self) -> Order:
        order, created = self.store.submit_order(
            tenant_id=self.tenant_id, device_id=self.device_id, call_id=new_id("call"),
            caller="+15550100", lines=LINES, currency="USD", blueprint_hash="sha256:faults",
            idempotency_key=new_id("job"), now=datetime.now(UTC),
        )
        assert created, "a fresh idempotency key made no new order"
        self.submitted.append(order)
        return order

    def close(self) -> None:
        self.store.close()


@dataclass
class FaultStack:
    """Ports, paths and processes of one stack; `start()` returns once all parts are up."""

    root: Path
    tuning: StackTuning = field(default_factory=StackTuning)
    tenant_id: str = field(default_factory=lambda: new_id("ten"))
    device_id: str = field(default_factory=lambda: new_id("dev"))
    printer_port: int = field(default_factory=free_port)
    cloud_port: int = field(default_factory=free_port)
    paper_lines: int | None = None  # a short roll in the printer (None: endless)

    def __post_init__(self) -> None:
        self.broker = fault_broker(self.root / "mosquitto")
        self.topics = DeviceTopics(self.tenant_id, self.device_id)
        self.ingest_client_id = new_id("job")
        self.printer = self._process("printer", [
            "printer-emulator", "--port", str(self.printer_port), "--out", str(self.tickets_dir)], {})
        if self.paper_lines is not None:  # the CLI has no option for it: call the entry
            self.printer.command = [sys.executable, "-c", (
                "from pathlib import Path; from appliance.edge.printer_emulator import "
                f"run_emulator; run_emulator(port={self.printer_port}, "
                f"out_dir=Path({str(self.tickets_dir)!r}), paper_lines={self.paper_lines})")]
        self.cloud = self._process("cloud", ["cloud", "run"], {
            "VOXERON_CLOUD_DB_PATH": str(self.cloud_db),
            "VOXERON_CLOUD_PORT": str(self.cloud_port),
            "VOXERON_CLOUD_INGEST_CLIENT_ID": self.ingest_client_id,
            "VOXERON_CLOUD_TENANT_CA_DIR": str(self.root / "cloud" / "tenant-ca"),
        })
        self.edge = self._process("edge", ["appliance", "edge"], {
            "VOXERON_PRINTER_URL": f"tcp://127.0.0.1:{self.printer_port}",
            "VOXERON_PRINTER_POLL_S": str(self.tuning.printer_poll_s),
        })
        self.sync = self._process("sync", ["appliance", "sync"], {
            "VOXERON_ACK_TIMEOUT_S": str(self.tuning.ack_timeout_s),
            "VOXERON_HEALTH_INTERVAL_S": str(self.tuning.health_interval_s),
        })
        self._loader: OrderLoader | None = None

    # -- where things are ---------------------------------------------------------------

    @property
    def box_dir(self) -> Path:
        return self.root / "box"

    @property
    def box_db(self) -> Path:
        return self.box_dir / "box.sqlite3"

    @property
    def cloud_db(self) -> Path:
        return self.root / "cloud" / "cloud.sqlite3"

    @property
    def tickets_dir(self) -> Path:
        return self.root / "tickets"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def processes(self) -> list[VoxeronProcess]:
        return [self.printer, self.cloud, self.edge, self.sync]

    @property
    def loader(self) -> OrderLoader:
        if self._loader is None:
            self._loader = OrderLoader(self.box_db, self.tenant_id, self.device_id)
        return self._loader

    def _process(self, name: str, args: list[str], env: dict[str, str]) -> VoxeronProcess:
        # The broker's port is known only after its first start: filled in by start().
        common = {"VOXERON_TENANT_ID": self.tenant_id, "VOXERON_DEVICE_ID": self.device_id,
                  "VOXERON_DATA_DIR": str(self.box_dir)}
        return VoxeronProcess(name, args, {**common, **env}, self.logs_dir / f"{name}.log")

    # -- life cycle -----------------------------------------------------------------------

    def start(self, *, box: bool = True) -> FaultStack:
        """Broker, printer and cloud, then (unless `box` is False) edge and sync."""
        self.broker.start()
        for proc in self.processes:
            proc.env["VOXERON_MQTT_URL"] = self.broker.url
            proc.env["VOXERON_CLOUD_MQTT_URL"] = self.broker.url
        self.printer.start()
        self.start_cloud()
        wait_until(lambda: port_open(self.printer_port), 30, "the printer emulator",
                   lambda: self.tail(self.printer))
        _ = self.loader  # the schema exists before the box processes open the file
        if box:
            self.edge.start()
            self.sync.start()
            self.wait_box_online()
        return self

    def wait_box_online(self, timeout: float = 60) -> None:
        """Until the cloud has the box's online status: sync is connected and subscribed
        (it subscribes before it announces, on the same connection)."""
        def online() -> bool:
            assert self.sync.alive, f"sync exited: {self.tail(self.sync)}"
            return self.cloud_device_online(self.tenant_id, self.device_id)
        wait_until(online, timeout, "the box online in the cloud", lambda: self.tail(self.sync))

    def start_cloud(self) -> None:
        """Start the cloud and return once its ingest is subscribed (a probe status is stored)."""
        self.cloud.start()
        probe = DeviceStatus(tenant_id=new_id("ten"), device_id=new_id("dev"), online=True)
        topic = DeviceTopics(probe.tenant_id, probe.device_id).status
        client = raw_client(self.broker.port)
        try:
            def probed() -> bool:
                assert self.cloud.alive, f"cloud exited: {self.tail(self.cloud)}"
                client.publish(topic, probe.model_dump_json(), qos=1)
                return self.cloud_device_online(probe.tenant_id, probe.device_id)
            wait_until(probed, 60, "the cloud's ingest", lambda: self.tail(self.cloud))
        finally:
            client.loop_stop()
            client.disconnect()

    def cloud_device_online(self, tenant_id: str, device_id: str) -> bool:
        """Whether the cloud's database has this device online (False before it exists).

        Read from the database, not the API, so readiness does not depend on API auth."""
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.cloud_db}?mode=ro", uri=True,
                                                    timeout=10)) as conn:
                row = conn.execute("SELECT online FROM devices WHERE tenant_id = ? AND "
                                   "device_id = ?", (tenant_id, device_id)).fetchone()
        except sqlite3.OperationalError:  # no file or no schema yet
            return False
        return bool(row and row[0])

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
        for proc in reversed(self.processes):
            proc.stop()
        self.broker.stop()

    @staticmethod
    def tail(proc: VoxeronProcess, lines: int = 15) -> str:
        if not proc.log_path.exists():
            return f"({proc.name}: no log)"
        text = proc.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"last lines of {proc.log_path}:\n" + "\n".join(text)

    def __enter__(self) -> FaultStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

