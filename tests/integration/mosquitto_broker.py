"""A real Mosquitto with mutual TLS and per-device ACLs, started on a free loopback port.

The listener demands a client certificate signed by one of `client_ca_pems` and takes the
certificate's CN as the MQTT username. The ACL gives every device (CN
`<tenant>/d/<device>`) read/write on `vx/v1/t/<tenant>/d/<device>/#` only, and each name
in `superusers` (the cloud ingest) read/write on `vx/v1/#`. The broker's own certificate
comes from a CA made here; clients trust it through `server_ca_file`.
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

from cloud.control.tenant_ca import CertificateAuthority

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DEVICE_PATTERN = "pattern readwrite vx/v1/t/%u/#"


def acl_text(superusers: Sequence[str]) -> str:
    """The broker ACL: devices by pattern on their CN, superusers on the whole v1 tree."""
    lines = ["# Devices: username = certificate CN = <tenant>/d/<device>.", DEVICE_PATTERN, ""]
    for user in superusers:
        lines += [f"user {user}", "topic readwrite vx/v1/#", ""]
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MtlsMosquitto:
    """Start with `with MtlsMosquitto(...) as broker:`; `broker.url` is mqtts://127.0.0.1:port."""

    def __init__(self, workdir: Path, client_ca_pems: Sequence[bytes],
                 superusers: Sequence[str]) -> None:
        self.workdir = workdir
        self._client_ca_pems = list(client_ca_pems)
        self._superusers = list(superusers)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    @property
    def server_ca_file(self) -> str:
        return str(self.workdir / "server-ca.pem")

    @property
    def log_file(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_files(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
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

    def start(self, timeout: float = 10.0) -> MtlsMosquitto:
        """Start the broker and return once its TLS port accepts connections."""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            conf = self._write_files()
            with open(self.workdir / "stderr.log", "wb") as err:
                self._proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)],
                                              stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", self.port), timeout=0.2):
                    return self
                time.sleep(0.05)
            self.stop()
        log = "".join(p.read_text(errors="replace") for p in (
            self.workdir / "stderr.log", self.log_file) if p.exists())
        raise RuntimeError(f"mosquitto did not start on 127.0.0.1:{self.port}:\n{log[-2000:]}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = None

    def __enter__(self) -> MtlsMosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
