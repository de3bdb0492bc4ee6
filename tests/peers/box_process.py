"""Runs the box's voice process (`voxeron appliance voice`) as a real OS process for a test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from voxeron.ports import free_port, sip_options_ok


@dataclass(frozen=True)
class VoiceBox:
    sip_port: int
    data_dir: Path
    log_path: Path

    @property
    def db_path(self) -> Path:
        return self.data_dir / "box.sqlite3"

    @property
    def uri(self) -> str:
        return f"sip:order@127.0.0.1:{self.sip_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def relaxed_policy(tmp: Path, latency_budget_ms: int = 60_000) -> Path:
    """The default runtime policy with a wide latency budget, as a file for
    VOXERON_VOICE_RUNTIME_POLICY: for tests about something other than speed, so a loaded
    CI machine's slow turn is not handed to staff as a latency breach."""
    import yaml

    from blueprints.engine import load_yaml

    default = Path(__file__).resolve().parents[2] / "blueprints" / "policies" / "default.yaml"
    doc = {**load_yaml(default), "policy": "relaxed", "latency_budget_ms": latency_budget_ms}
    path = tmp / "relaxed-policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@contextmanager
def voice_box(tmp: Path, **env: str) -> Iterator[VoiceBox]:
    """Start voxeron-voice on a free UDP port with its data in `tmp`; always stopped after."""
    box = VoiceBox(free_port(socket.SOCK_DGRAM), tmp / "box", tmp / "voice.log")
    box.data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ, "VOXERON_DATA_DIR": str(box.data_dir),
        "VOXERON_VOICE_SIP_HOST": "127.0.0.1", "VOXERON_VOICE_SIP_PORT": str(box.sip_port),
        "VOXERON_VOICE_RTP_HOST": "127.0.0.1", **env,
    }
    with box.log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "voxeron", "appliance", "voice"],
                                stdout=log, stderr=subprocess.STDOUT, env=full_env)
    try:
        if not sip_options_ok(box.sip_port, timeout=90):
            raise RuntimeError(f"voice process did not answer OPTIONS:\n{box.log()}")
        yield box
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
