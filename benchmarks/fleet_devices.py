"""Simulated devices for `voxeron bench sync --fleet`: real MQTT 3.1.1 connections, cheap.

Each device is its own TCP connection and client id to the broker, publishing QoS 1
events on its own up/events topic and taking the cloud's QoS 1 acks on its down/acks
topic, exactly as a box does. The packets are written by hand (CONNECT, SUBSCRIBE,
PUBLISH, PUBACK) and all of a process's connections share one selector loop: paho costs
about 130 us of CPU per event round trip, which on a 2-core machine would take the CPU
the benchmark is meant to measure (the cloud ingest); this costs a fraction of that.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import selectors
import socket
import struct
import time
from datetime import UTC, datetime
from typing import NamedTuple

from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, TicketPrinted
from sync.ids import new_id
from sync.topics import DeviceTopics


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session, keepalive off (the run is short)."""
    return _packet(0x10, _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0)
                   + _utf8(client_id))


def subscribe_packet(pid: int, topic_filter: str) -> bytes:
    return _packet(0x82, struct.pack("!H", pid) + _utf8(topic_filter) + b"\x01")


def publish_packet(pid: int, topic: str, payload: bytes) -> bytes:
    return _packet(0x32, _utf8(topic) + struct.pack("!H", pid) + payload)


def puback_packet(pid: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", pid)


def split_packets(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete packets off the front of `buf`: (first byte, body) each."""
    packets = []
    while len(buf) >= 2:
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(buf):
                return packets
            byte = buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        if len(buf) < i + length:
            return packets
        packets.append((buf[0], bytes(buf[i:i + length])))
        del buf[:i + length]
    return packets


# Sentinels in a device's template payload, replaced per event (see EventTemplate).
_ID_MARK, _SEQ_MARK = "evt_" + "Z" * 26, 987654321
_AT_MARK = datetime(2001, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)


class EventTemplate:
    """One device's event payload serialised once, as EventEnvelope dumps it, and cut
    where the event id, seq and creation time go: an event then costs a bytes join
    instead of a model dump (the simulator shares the cores with what it measures)."""

    def __init__(self, tenant_id: str, device_id: str) -> None:
        now = datetime.now(UTC)
        envelope = EventEnvelope(
            event_id=_ID_MARK, tenant_id=tenant_id, device_id=device_id, seq=_SEQ_MARK,
            occurred_at=_AT_MARK, correlation=Correlation(tenant_id=tenant_id, device_id=device_id),
            data=TicketPrinted(order_id=new_id("ord"), action_id=new_id("act"),
                               printer="kitchen", printed_at=now),
        )
        text = envelope.model_dump_json().encode()
        at_mark = envelope.model_dump(mode="json")["occurred_at"].encode()
        head, rest = text.split(b'"' + _ID_MARK.encode() + b'"')
        middle, rest = rest.split(str(_SEQ_MARK).encode())
        after_seq, tail = rest.split(at_mark)
        self._parts = (head + b'"', b'"' + middle, after_seq, tail)
        # Canonical-looking ids: the device's own time and random part, then the seq in
        # decimal digits (all in the Crockford alphabet), so ids never repeat in a run.
        self._id_prefix = new_id("evt")[:22]
        check = EventEnvelope.model_validate_json(self.payload(7, 1.5e9)[1])
        assert (check.seq, check.device_id, check.occurred_at.timestamp()) == (7, device_id, 1.5e9)

    def payload(self, seq: int, created_wall: float) -> tuple[bytes, bytes]:
        """(event id, payload) of the device's event `seq` created at `created_wall`."""
        event_id = f"{self._id_prefix}{seq:08d}".encode()
        at = datetime.fromtimestamp(created_wall, UTC).isoformat().encode()
        head, middle, after_seq, tail = self._parts
        return event_id, b"".join((head, event_id, middle, str(seq).encode(), after_seq, at, tail))


class Device:
    """One simulated box: its socket, topics, next seq and packet id, and an event template."""

    def __init__(self, host: str, port: int, tenant_id: str) -> None:
        self.device_id = new_id("dev")
        self.topics = DeviceTopics(tenant_id, self.device_id)
        self.template = EventTemplate(tenant_id, self.device_id)
        self.events_topic = self.topics.events
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(self.device_id))
        self.sock.setblocking(False)
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.seq = 0
        self.pid = 0
        self.subscribed = False

    def next_pid(self) -> int:
        self.pid = self.pid % 65535 + 1
        return self.pid

    def queue(self, data: bytes) -> None:
        self.outbuf += data

    def flush(self) -> bool:
        """Send what the socket takes now; True if something is still waiting."""
        if self.outbuf:
            try:
                sent = self.sock.send(self.outbuf)
            except BlockingIOError:
                return True
            del self.outbuf[:sent]
        return bool(self.outbuf)

    def event(self, created_wall: float) -> tuple[bytes, bytes]:
        self.seq += 1
        return self.template.payload(self.seq, created_wall)


class FleetResult(NamedTuple):
    """What one simulator process saw: latencies run from each event's scheduled creation
    (not from when the simulator got round to it) to its ack arriving back."""

    published: int
    latencies_s: list[float]
    unacked: int
    rejected: int
    cpu_s: float
    max_lag_s: float


def fleet_worker(url: str, tenant_id: str, n_devices: int, rate: float, seconds: float,
                 drain_s: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One process: `n_devices` connections on one selector loop; reports to `out`:
    ("ready", 0) once all are subscribed, then ("done", FleetResult)."""
    host, port = url.removeprefix("mqtt://").split(":")
    devices = [Device(host, int(port), tenant_id) for _ in range(n_devices)]
    sel = selectors.DefaultSelector()
    for dev in devices:
        sel.register(dev.sock, selectors.EVENT_READ, dev)
        dev.queue(subscribe_packet(dev.next_pid(), dev.topics.acks))
        dev.flush()
    sent: dict[bytes, float] = {}  # event id -> scheduled creation (monotonic)
    latencies: list[float] = []
    rejected = 0
    dirty: set[Device] = set()  # devices with bytes queued to send

    def pump(timeout: float) -> None:
        nonlocal rejected
        for key, _ in sel.select(timeout):
            dev: Device = key.data
            try:
                chunk = dev.sock.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionError(f"broker closed the connection of {dev.device_id}")
            dev.inbuf += chunk
            arrived = time.monotonic()
            for first, body in split_packets(dev.inbuf):
                kind = first >> 4
                if kind == 3:  # PUBLISH: an ack from the cloud (QoS 1: answer PUBACK)
                    tlen = struct.unpack("!H", body[:2])[0]
                    pid = struct.unpack("!H", body[2 + tlen:4 + tlen])[0]
                    ack = json.loads(body[4 + tlen:])
                    created = sent.pop(ack["event_id"].encode(), None)
                    if created is not None:
                        if ack["status"] == "rejected":
                            rejected += 1
                        else:
                            latencies.append(arrived - created)
                    dev.queue(puback_packet(pid))
                    dirty.add(dev)
                elif kind == 9:  # SUBACK
                    dev.subscribed = True
        for dev in list(dirty):
            if not dev.flush():
                dirty.discard(dev)

    deadline = time.monotonic() + 30
    while not all(d.subscribed for d in devices):
        if time.monotonic() > deadline:
            raise TimeoutError("devices not subscribed in 30 s")
        pump(0.05)
    out.put(("ready", 0))
    cpu0 = time.process_time()
    published, max_lag = 0, 0.0
    t0, wall0 = time.monotonic(), time.time()
    while (elapsed := time.monotonic() - t0) < seconds:
        due = int(elapsed * rate)
        if due > published:
            max_lag = max(max_lag, elapsed - published / rate)
        while published < due:
            dev = devices[published % n_devices]
            created = published / rate  # the event's scheduled creation, from t0
            event_id, payload = dev.event(wall0 + created)
            sent[event_id] = t0 + created
            dev.queue(publish_packet(dev.next_pid(), dev.events_topic, payload))
            dirty.add(dev)
            published += 1
        pump(0.001)
    end = time.monotonic() + drain_s
    while sent and time.monotonic() < end:
        pump(0.05)
    cpu = time.process_time() - cpu0
    for dev in devices:
        dev.sock.close()
    out.put(("done", FleetResult(published, latencies, len(sent), rejected, cpu, max_lag)))
