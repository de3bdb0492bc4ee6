"""A real Mosquitto with mutual TLS and per-device ACLs, started on a free loopback port.

The listener demands a client certificate signed by one of `client_ca_pems` and takes the
certificate's CN as the MQTT username. The ACL gives every device (CN
`<tenant>/d/<device>`) read/write on `vx/v1/t/<tenant>/d/<device>/#` only, and each name
in `superusers` (the cloud ingest) read/write on `vx/v1/#`. The broker's own certificate
comes from a CA made here; clients trust it through `server_ca_file`.

`PlainMosquitto` is the anonymous plain-TCP one. Both restart on the same port.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from cloud.control.tenant_ca import CertificateAuthority

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DEVICE_PATTERN = "pattern readwrite vx/v1/t/%u/#"


def acl_text(superusers: Sequence[str]) -> str:
    """The broker ACL: devices by pattern on their CN, superusers on the whole v1 tree."""
    lines = ["# Devices: username = certificate CN = <tenant>/d/<device>.", DEVICE_PATTERN, ""]
    for user in superusers:
        lines += [f"user {user}", "topic readwrite vx/v1/#", ""]
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


class _Mosquitto:
    """One private mosquitto process: `start()` picks a free port the first time and reuses
    it on every later start (a restart is the same broker address to its clients)."""

    scheme = "mqtt"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_files(self) -> Path:
        """Write the config (and whatever it names) for `self.port`; return the config."""
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> Self:
        """Start (again) and return once the port accepts connections."""
        fixed = self.port != 0
        for _attempt in range(1 if fixed else 3):  # a free port may be taken before the bind
            if not fixed:
                self.port = free_port()
            self.workdir.mkdir(parents=True, exist_ok=True)
            conf = self._write_files()
            with open(self.workdir / "stderr.log", "ab") as err:
                self._proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)],
                                              stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                if port_open(self.port):
                    self.starts += 1
                    return self
                time.sleep(0.05)
            self.stop()
        log = "".join(p.read_text(errors="replace") for p in (
            self.workdir / "stderr.log", self.log_file) if p.exists())
        raise RuntimeError(f"mosquitto did not start on 127.0.0.1:{self.port}:\n{log[-2000:]}")

    def stop(self) -> None:
        """SIGTERM and wait: the port is closed when this returns."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MtlsMosquitto(_Mosquitto):
    """Start with `with MtlsMosquitto(...) as broker:`; `broker.url` is mqtts://127.0.0.1:port."""

    scheme = "mqtts"

    def __init__(self, workdir: Path, client_ca_pems: Sequence[bytes],
                 superusers: Sequence[str]) -> None:
        super().__init__(workdir)
        self._client_ca_pems = list(client_ca_pems)
        self._superusers = list(superusers)

    @property
    def server_ca_file(self) -> str:
        return str(self.workdir / "server-ca.pem")

    def _write_files(self) -> Path:
        now = datetime.now(UTC)
        server_ca = CertificateAuthority.create("Voxeron test broker CA", "voxeron", now)
        server = server_ca.issue_with_new_key("127.0.0.1", now, client=False, server=True,
                                              ip_addresses=["127.0.0.1"])
        (self.workdir / "server-ca.pem").write_bytes(server_ca.cert_pem)
        (self.workdir / "server.crt").write_bytes(server.cert_pem)
        (self.workdir / "server.key").write_bytes(server.key_pem)
        (self.workdir / "server.key").chmod(0o600)
        (self.workdir / "clients-ca.pem").write_bytes(b"".join(self._client_ca_pems))
        (self.workdir / "acl").write_text(acl_text(self._superusers))
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join([
            # Started as root, mosquitto would drop to user 'mosquitto' and lose its files.
            f"user {getpass.getuser()}",
            "persistence false",
            f"log_dest file {self.log_file}",
            "log_type all",
            f"listener {self.port} 127.0.0.1",
            f"cafile {self.workdir / 'clients-ca.pem'}",
            f"certfile {self.workdir / 'server.crt'}",
            f"keyfile {self.workdir / 'server.key'}",
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
            f"acl_file {self.workdir / 'acl'}",
            "",
        ]))
        return conf


class PlainMosquitto(_Mosquitto):
    """An anonymous plain-TCP Mosquitto on a free loopback port, for protocol and fault tests.

    `extra_conf` lines go into its mosquitto.conf (e.g. max_queued_messages); `log_types`
    are its log_type lines. Start with `with PlainMosquitto(workdir) as broker:`;
    `broker.url` is mqtt://127.0.0.1:port. In-memory sessions only (persistence false).
    """

    def __init__(self, workdir: Path, extra_conf: Sequence[str] = (),
                 log_types: Sequence[str] = ("all",)) -> None:
        super().__init__(workdir)
        self._extra = list(extra_conf)
        self._log_types = list(log_types)

    def _write_files(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join([
            f"user {getpass.getuser()}", "persistence false", f"log_dest file {self.log_file}",
            *(f"log_type {t}" for t in self._log_types),
            f"listener {self.port} 127.0.0.1", "allow_anonymous true", *self._extra, "",
        ]))
        return conf
