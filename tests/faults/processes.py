"""One `voxeron` subcommand as a real OS process that a test may SIGKILL and start again.

Every incarnation appends its stdout and stderr (the JSON log lines) to one file per
role, so a test can assert on what the process logged across all its lives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def clean_env(overrides: dict[str, str]) -> dict[str, str]:
    """The test's environment without any VOXERON_* the developer may have set, plus ours."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VOXERON_")}
    return {**base, **overrides}


class VoxeronProcess:
    """`python -m voxeron <args>` (or `command`) with a fixed environment; kill9() and
    start() at will."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path,
                 command: list[str] | None = None) -> None:
        self.name, self.args, self.env, self.log_path = name, args, clean_env(env), log_path
        self.command = command or [sys.executable, "-m", "voxeron", *args]
        self.starts = 0
        self.kills = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def start(self) -> VoxeronProcess:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                          start_new_session=True)
        self.starts += 1
        return self

    def send(self, sig: signal.Signals) -> None:
        """Deliver a signal to the running process (e.g. the emulator's SIGUSR1 refill)."""
        assert self._proc is not None and self._proc.poll() is None, f"{self.name} is not running"
        self._proc.send_signal(sig)

    def kill9(self) -> None:
        """SIGKILL: no handler runs, no buffer is flushed, no goodbye is said."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self.kills += 1
        self._proc.wait(10)
        self._proc = None

    def restart_after_kill(self) -> None:
        self.kill9()
        self.start()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not end in `timeout`; returns the exit code."""
        if self._proc is None:
            return None
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode

    def log_records(self) -> list[dict[str, Any]]:
        """The structured (JSON) lines of every incarnation; other output is ignored."""
        if not self.log_path.exists():
            return []
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by SIGKILL
        return records
