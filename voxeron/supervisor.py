"""Starts, watches and stops the product's processes (box and demo stack).

Each process is a real OS process running one `voxeron` subcommand, so a crash of the
printer driver or the MQTT link never takes a call down, and tests can kill -9 any one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BOX_ROLES = ("voice", "edge", "sync", "setup")


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Owns a set of child processes; stop_all() always leaves none behind."""

    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        child = Child(name, [sys.executable, "-m", "voxeron", *args], log_path,
                      {**os.environ, **(env or {})})
        self._spawn(child)
        self.children[name] = child
        return child

    def _spawn(self, child: Child) -> None:
        with child.log_path.open("ab") as log:
            child.proc = subprocess.Popen(child.argv, stdout=log, stderr=subprocess.STDOUT,
                                          env=child.env, start_new_session=True)

    def dead(self) -> list[Child]:
        return [c for c in self.children.values() if c.proc and c.proc.poll() is not None]

    def restart(self, child: Child) -> None:
        child.restarts += 1
        self._spawn(child)

    def stop_all(self, timeout: float = 10.0) -> None:
        for c in self.children.values():
            if c.proc and c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for c in self.children.values():
            if c.proc is None:
                continue
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()


def run_appliance(log_dir: Path | None = None) -> int:
    """`voxeron appliance run`: the four box processes, restarted with back-off if they die."""
    from appliance.config import BoxIdentity

    logs = log_dir or BoxIdentity().data_dir / "logs"
    sup = Supervisor()
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for role in BOX_ROLES:
        sup.start(role, ["appliance", role], logs / f"{role}.log")
    print(f"appliance: started {', '.join(BOX_ROLES)}; logs in {logs}/", flush=True)
    try:
        while not stopping:
            for child in sup.dead():
                code = child.proc.returncode if child.proc else None
                print(f"appliance: {child.name} exited with {code}; restarting", flush=True)
                time.sleep(min(5.0, 0.5 * (child.restarts + 1)))
                sup.restart(child)
            time.sleep(0.2)
    finally:
        sup.stop_all()
    return 0
