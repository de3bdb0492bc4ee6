"""baresip (an independent SIP user agent) as a headless caller on loopback.

baresip 1.0.0 has no file player, so received audio goes to an `aubridge` device with no
source attached (it is dropped); the caller's speech comes from a WAV through `aufile`.
Only the modules a call needs are loaded: no UI module reads the terminal, no sound card
is opened, nothing registers, and every address is 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

MODULES = ("g711.so", "aufile.so", "aubridge.so")
MODULE_DIR = Path("/usr/lib/baresip/modules")


def write_config(config_dir: Path, *, sip_port: int, caller_wav: Path, user: str = "5551234") -> Path:
    """Write `config` and `accounts` for one PCMU caller that never registers; returns the dir."""
    config_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        ("poll_method", "epoll"),
        ("sip_listen", f"127.0.0.1:{sip_port}"),
        # Binds media and SDP to loopback; without it baresip advertises the LAN address.
        ("net_interface", "127.0.0.1"),
        ("call_max_calls", "1"),
        ("audio_source", f"aufile,{caller_wav}"),
        ("audio_player", "aubridge,voxeron-sink"),
        ("audio_alert", "aubridge,voxeron-sink"),
        ("statmode_default", "off"),
        ("module_path", str(MODULE_DIR)),
        *(("module", m) for m in MODULES),
        ("module_tmp", "account.so"),
        ("module_app", "menu.so"),  # the /dial command
    ]
    (config_dir / "config").write_text("".join(f"{k}\t{v}\n" for k, v in lines))
    (config_dir / "accounts").write_text(f"<sip:{user}@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    return config_dir


def dial_command(binary: str, config_dir: Path, uri: str, max_s: int) -> list[str]:
    """baresip's command line: SIP trace on (-s), dial `uri` at start, quit after `max_s`."""
    return [binary, "-f", str(config_dir), "-s", "-e", f"/dial {uri}", "-t", str(max_s)]
