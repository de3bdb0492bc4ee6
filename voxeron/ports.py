"""Loopback port helpers for the demo and tests."""

from __future__ import annotations

import socket
import time


def port_is_free(port: int, host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_udp_tcp_port(host: str = "127.0.0.1", tries: int = 50) -> int:
    """A port free for both UDP and TCP right now: SIP peers such as baresip bind both."""
    for _ in range(tries):
        port = free_port(socket.SOCK_DGRAM, host)
        if port_is_free(port, host, socket.SOCK_STREAM):
            return port
    raise OSError(f"no port free for both UDP and TCP on {host} after {tries} tries")


def preferred_port(port: int, kind: int = socket.SOCK_STREAM) -> int:
    """`port` if it is free on loopback, else any free one."""
    return port if port_is_free(port, kind=kind) else free_port(kind)


def wait_tcp(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def sip_options_ok(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    """True once a SIP agent on host:port answers OPTIONS with 200 (readiness probe)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        me = s.getsockname()[1]
        s.settimeout(0.5)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            msg = (
                f"OPTIONS sip:probe@{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{me};branch=z9hG4bKprobe{n}\r\n"
                f"From: <sip:probe@{host}>;tag=probe\r\nTo: <sip:probe@{host}>\r\n"
                f"Call-ID: probe-{me}-{n}\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), (host, port))
            try:
                data, _ = s.recvfrom(4096)
            except OSError:
                continue
            if data.startswith(b"SIP/2.0 200"):
                return True
    return False
