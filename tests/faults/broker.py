"""The fault suite's broker, and a recorder that holds its port while it is down.

An outage test needs the broker gone and back at the same address, as a real broker
restart or a cut uplink looks to the box: `PlainMosquitto` (tests.integration) restarts on
the port it first took. In-memory sessions only (persistence false): a restarted broker
has forgotten every session, the harshest case for the box.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from tests.integration.mosquitto_broker import PlainMosquitto


def fault_broker(workdir: Path) -> PlainMosquitto:
    """The fault suite's broker: a deep queue and a quieter log than the protocol tests'."""
    return PlainMosquitto(workdir, extra_conf=["max_queued_messages 100000"],
                          log_types=["error", "warning", "notice"])


def _connect_client_id(packet: bytes) -> str | None:
    """The client id of an MQTT 3.1.1 CONNECT packet, or None if `packet` is not one."""
    if not packet or packet[0] != 0x10:
        return None
    i = 1
    while i < len(packet) and packet[i] & 0x80:  # remaining length: a varint
        i += 1
    i += 1
    name_len = int.from_bytes(packet[i:i + 2], "big")
    i += 2 + name_len + 1 + 1 + 2  # protocol name, level, flags, keepalive
    id_len = int.from_bytes(packet[i:i + 2], "big")
    raw = packet[i + 2:i + 2 + id_len]
    return raw.decode("utf-8", "replace") if len(raw) == id_len else None


class ConnectRecorder:
    """Holds a stopped broker's port: takes each connection, notes who and when, hangs up.

    To a client this is a broker that never answers CONNECT, so its reconnect back-off
    grows as it would against a closed port, while the test sees every attempt.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.attempts: list[tuple[str | None, float]] = []
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> ConnectRecorder:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="connect-recorder", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            at = time.monotonic()
            with conn:
                conn.settimeout(2)
                try:
                    packet = conn.recv(4096)
                except OSError:
                    packet = b""
            self.attempts.append((_connect_client_id(packet), at))

    def gaps(self, client_id: str) -> list[float]:
        """Seconds between one client's consecutive connection attempts."""
        times = [at for who, at in list(self.attempts) if who == client_id]
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
