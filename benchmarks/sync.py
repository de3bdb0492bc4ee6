"""Box -> MQTT -> cloud ingest throughput, end to end, with every part real.

`voxeron bench sync` fills a box outbox (real LocalStore, >= 10,000 events), starts a
Mosquitto on a free loopback port, the real cloud (`voxeron cloud run` subprocesses, one
or several ingest replicas in a share group) and the real voxeron-sync
(`voxeron appliance sync` subprocess), and times the drain into the cloud database.

`voxeron bench sync --fleet 1000` instead runs 1,000 simulated devices, each its own MQTT
connection and client id (a few processes, each driving its connections from one
selector loop; see benchmarks/fleet_devices.py), publishing events at a fixed total rate
and collecting the cloud's acks: events/s ingested, the number of events lost, and
box-to-cloud latency from each event's scheduled creation on its device (so a simulator
that falls behind shows as latency, not as a lower rate) to the cloud's ack arriving
back (the ack leaves after the commit: an upper bound) and to the write that stored it
(`received_at`, just before the commit: a lower bound).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import multiprocessing as mp
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from appliance.store import LocalStore
from benchmarks.fleet_devices import FleetResult, fleet_worker
from benchmarks.turn_latency import percentile
from sync.contracts.messages import DeviceStatus
from sync.contracts.order import OrderLine
from sync.ids import new_id
from sync.topics import DeviceTopics

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
VOXERON = str(Path(sys.executable).with_name("voxeron"))
# Ingest may fall behind a burst: the broker must queue, not drop, for its session.
MOSQUITTO_CONF = ["persistence false", "allow_anonymous true", "max_queued_messages 1000000",
                  "max_inflight_messages 1000", "set_tcp_nodelay true"]
LINES = [OrderLine(line_id="l1", item_id="pizza_margherita", name="Margherita pizza",
                   quantity=1, size="large", unit_price_cents=1499)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mosquitto(work: Path) -> Iterator[tuple[str, int]]:
    """A Mosquitto 2 on a free loopback port with MOSQUITTO_CONF; yields its URL and pid."""
    port = _free_port()
    conf = work / "mosquitto.conf"
    conf.write_text("\n".join([f"user {getpass.getuser()}", f"listener {port} 127.0.0.1",
                               *MOSQUITTO_CONF, ""]))
    with open(work / "mosquitto.log", "wb") as out:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out, stderr=out)
    try:
        _wait_port(port, proc)
        yield f"mqtt://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


@contextlib.contextmanager
def cloud(work: Path, url: str, replicas: int, protocol: str,
          ) -> Iterator[tuple[Path, list[int]]]:
    """`replicas` `voxeron cloud run` processes on one database; yields its path and their
    pids once every replica is subscribed (each has stored a retained probe status)."""
    db = work / "cloud.sqlite3"
    procs = []
    probes = [DeviceStatus(tenant_id=new_id("ten"), device_id=new_id("dev"), online=True)
              for _ in range(replicas)]
    host, port = url.removeprefix("mqtt://").split(":")
    probe_client = _client(new_id("job"))
    probe_client.connect(host, int(port))
    probe_client.loop_start()
    try:
        for i, probe in enumerate(probes):
            env = {**os.environ, "VOXERON_CLOUD_DB_PATH": str(db), "VOXERON_CLOUD_MQTT_URL": url,
                   "VOXERON_CLOUD_PORT": str(_free_port()),
                   "VOXERON_CLOUD_INGEST_CLIENT_ID": new_id("job"),
                   "VOXERON_CLOUD_INGEST_CLEAN_SESSION": "true",
                   "VOXERON_CLOUD_MQTT_PROTOCOL": protocol}
            if replicas > 1:
                env["VOXERON_CLOUD_INGEST_SHARE_GROUP"] = "bench"
            with open(work / f"cloud-{i}.log", "wb") as out:
                procs.append(subprocess.Popen([VOXERON, "cloud", "run"], env=env, stdout=out,
                                              stderr=subprocess.STDOUT))
            # Retained: the replica gets it on subscribing, so a stored probe = subscribed.
            topic = DeviceTopics(probe.tenant_id, probe.device_id).status
            probe_client.publish(topic, probe.model_dump_json(), qos=1, retain=True)
            _wait(lambda p=probe: _count(db, "SELECT COUNT(*) FROM devices WHERE device_id = ?",
                                         (p.device_id,)) > 0, 30, "cloud replica subscribed")
            probe_client.publish(topic, b"", qos=1, retain=True)
        yield db, [p.pid for p in procs]
    finally:
        probe_client.loop_stop()
        probe_client.disconnect()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _count(db: Path, sql: str, params: tuple[object, ...] = ()) -> int:
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            return int(c.execute(sql, params).fetchone()[0])
    except sqlite3.OperationalError:  # schema not migrated yet
        return 0


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def _client(client_id: str) -> paho.Client:
    return paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)


def _stored_span(db: Path, tenant_id: str) -> tuple[int, float]:
    """(events stored for the tenant, seconds between the first and last commit)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        n, first, last = c.execute(
            "SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM events WHERE tenant_id = ?",
            (tenant_id,)).fetchone()
    if not n:
        return 0, 0.0
    return n, (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def _settled_count(db: Path, tenant_id: str) -> tuple[int, float]:
    """`_stored_span` once the count stops growing (the last batches are committed)."""
    last = (-1, 0.0)
    while (now := _stored_span(db, tenant_id))[0] != last[0]:
        last = now
        time.sleep(1.0)
    return now


# ---- drain: one box's pre-filled outbox into the cloud -------------------------------

def fill_outbox(store: LocalStore, tenant_id: str, device_id: str, orders: int) -> float:
    """Submit `orders` orders (one order.submitted event each); returns events/s written."""
    t0 = time.perf_counter()
    for _ in range(orders):
        store.submit_order(tenant_id=tenant_id, device_id=device_id, call_id=new_id("call"),
                           caller=None, lines=LINES, currency="USD", blueprint_hash="bench",
                           idempotency_key=new_id("job"), now=datetime.now(UTC))
    return orders / (time.perf_counter() - t0)


def run_drain(work: Path, url: str, events: int, replicas: int, protocol: str) -> int:
    tenant_id, device_id = new_id("ten"), new_id("dev")
    box = work / "box"
    store = LocalStore(box / "box.sqlite3")
    write_rate = fill_outbox(store, tenant_id, device_id, events)
    print(f"outbox pre-filled: {store.outbox_depth()} events at {write_rate:,.0f} events/s "
          "(order.submit, one transaction each, synchronous=FULL)")
    with cloud(work, url, replicas, protocol) as (db, _):
        env = {**os.environ, "VOXERON_TENANT_ID": tenant_id, "VOXERON_DEVICE_ID": device_id,
               "VOXERON_DATA_DIR": str(box), "VOXERON_MQTT_URL": url,
               "VOXERON_HEALTH_INTERVAL_S": "5"}
        t0 = time.monotonic()
        with open(work / "sync.log", "wb") as out:
            proc = subprocess.Popen([VOXERON, "appliance", "sync"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            _wait(lambda: store.outbox_depth() == 0, 600, "outbox drained and acked")
            wall = time.monotonic() - t0
        finally:
            proc.terminate()
            proc.wait(15)
        stored, span = _stored_span(db, tenant_id)
        in_order = _seqs_in_order(db, device_id)
    store.close()
    rate = stored / span if span else float("inf")
    print(f"{'events':<34}{events:>12,}")
    print(f"{'stored in the cloud (distinct ids)':<34}{stored:>12,}")
    print(f"{'lost':<34}{events - stored:>12,}")
    print(f"{'drain rate first->last commit':<34}{rate:>12,.0f} events/s")
    print(f"{'wall incl. sync process start':<34}{wall:>12.1f} s ({events / wall:,.0f} events/s)")
    print(f"{'stored in seq order':<34}{str(in_order):>12}")
    return 0 if stored == events else 1


def _seqs_in_order(db: Path, device_id: str) -> bool:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        seqs = [r[0] for r in c.execute(
            "SELECT seq FROM events WHERE device_id = ? ORDER BY rowid", (device_id,))]
    return seqs == sorted(seqs)


# ---- fleet: many devices, each its own connection -------------------------------------

def run_fleet(work: Path, url: str, broker_pid: int | None, devices: int, rate: float,
              seconds: float, replicas: int, protocol: str, procs: int) -> int:
    tenant_id = new_id("ten")
    with cloud(work, url, replicas, protocol) as (db, pids):
        cpu_before = sum(cpu_seconds(p) for p in pids)
        broker_before = cpu_seconds(broker_pid) if broker_pid else 0.0
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        share = [devices // procs + (1 if i < devices % procs else 0) for i in range(procs)]
        workers = [ctx.Process(target=fleet_worker, args=(
            url, tenant_id, n, rate * n / devices, seconds, 60.0, out)) for n in share]
        for w in workers:
            w.start()
        for _ in workers:
            assert out.get(timeout=120)[0] == "ready"
        results: list[FleetResult] = [out.get(timeout=seconds + 180)[1] for _ in workers]
        for w in workers:
            w.join(30)
        stored, span = _settled_count(db, tenant_id)
        cloud_cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
        broker_cpu = cpu_seconds(broker_pid) - broker_before if broker_pid else None
        written = _created_to_written_ms(db, tenant_id)
    published = sum(r.published for r in results)
    latencies = [lat * 1000 for r in results for lat in r.latencies_s]
    per_event = 1e6 / max(stored, 1)
    print(f"{'devices (own connection each)':<38}{devices:>12,}")
    print(f"{'offered rate':<38}{rate:>12,.0f} events/s for {seconds:.0f} s")
    print(f"{'published by the devices':<38}{published:>12,}")
    print(f"{'stored in the cloud':<38}{stored:>12,}")
    print(f"{'lost (published - stored)':<38}{published - stored:>12,}")
    print(f"{'unacked / rejected at the end':<38}{sum(r.unacked for r in results):>12,} / "
          f"{sum(r.rejected for r in results):,}")
    print(f"{'ingested rate first->last commit':<38}{stored / span if span else 0:>12,.0f} events/s")
    print(f"{'cloud CPU per event (all replicas)':<38}{cloud_cpu * per_event:>12.0f} us "
          f"({max(stored, 1) / cloud_cpu:,.0f} events/s per busy core)")
    if broker_cpu is not None:
        print(f"{'broker CPU per event':<38}{broker_cpu * per_event:>12.0f} us")
    print(f"{'simulator CPU per event':<38}"
          f"{sum(r.cpu_s for r in results) / max(published, 1) * 1e6:>12.0f} us "
          f"(most behind its schedule: {max(r.max_lag_s for r in results) * 1000:,.0f} ms)")
    if latencies:
        print(f"{'created -> ack at the device p50/95/99':<38}{percentile(latencies, 50):>9,.0f} ms"
              f" / {percentile(latencies, 95):,.0f} ms / {percentile(latencies, 99):,.0f} ms")
    if written:
        print(f"{'created -> written in the cloud p50/95/99':<38}{percentile(written, 50):>6,.0f} ms"
              f" / {percentile(written, 95):,.0f} ms / {percentile(written, 99):,.0f} ms")
    return 0 if stored == published else 1


def _created_to_written_ms(db: Path, tenant_id: str) -> list[float]:
    """Per stored event, its creation on the device (`occurred_at`) to the start of the
    write that committed it (`received_at`, taken just before the transaction): a lower
    bound of created -> committed, as the ack's arrival at the device is an upper one."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        rows = c.execute(
            "SELECT (julianday(received_at) - julianday(json_extract(body, '$.occurred_at')))"
            " * 86400000.0 FROM events WHERE tenant_id = ?", (tenant_id,)).fetchall()
    return [float(r[0]) for r in rows if r[0] is not None]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="voxeron bench sync", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000, help="outbox events to drain")
    ap.add_argument("--fleet", type=int, default=0, metavar="N", help="simulate N devices instead")
    ap.add_argument("--rate", type=float, default=6000, help="fleet: offered events/s in total")
    ap.add_argument("--seconds", type=float, default=20, help="fleet: how long to publish")
    ap.add_argument("--procs", type=int, default=2, help="fleet: device-simulator processes")
    ap.add_argument("--replicas", type=int, default=1, help="cloud ingest replicas (share group)")
    ap.add_argument("--protocol", default="3.1.1", choices=["3.1.1", "5"], help="ingest's MQTT")
    ap.add_argument("--broker", help="use this mqtt:// URL instead of starting a Mosquitto")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep its logs and databases")
    args = ap.parse_args(argv)
    with contextlib.ExitStack() as dirs:
        work = Path(args.keep or dirs.enter_context(
            tempfile.TemporaryDirectory(prefix="voxeron-bench-sync-")))
        work.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            url, broker_pid = (args.broker, None) if args.broker else stack.enter_context(
                mosquitto(work))
            broker = args.broker or f"Mosquitto ({MOSQUITTO}) at {url}: {'; '.join(MOSQUITTO_CONF)}"
            print(f"broker: {broker}; cloud ingest replicas: {args.replicas}, MQTT "
                  f"{args.protocol}; cores: {os.cpu_count()}")
            if args.fleet:
                return run_fleet(work, url, broker_pid, args.fleet, args.rate, args.seconds,
                                 args.replicas, args.protocol, args.procs)
            return run_drain(work, url, args.events, args.replicas, args.protocol)
