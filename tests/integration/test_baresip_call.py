"""A call placed by baresip (an independent SIP user agent) reaches a confirmed order.

baresip dials the real voxeron-voice process on loopback and streams Piper-synthesized
speech from a WAV (aufile); the box answers, takes the order and hangs up with BYE.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from appliance.store import LocalStore
from tests.peers.baresip_config import dial_command, write_config
from tests.peers.box_process import voice_box
from tests.peers.caller_audio import RATE, scripted_order_call
from voxeron.caller_voices import write_wav
from voxeron.ports import free_udp_tcp_port

pytestmark = [pytest.mark.sip_peer, pytest.mark.slow]

ANSI = re.compile(r"\x1b\[[0-9;]*m")



def run_call(command: list[str], out_path: Path, cwd: Path, deadline_s: float) -> str:
    """Run baresip until its call has ended (or `deadline_s`), stop it, return its output."""
    with out_path.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=cwd)
    try:
        deadline = time.monotonic() + deadline_s
        while proc.poll() is None and time.monotonic() < deadline:
            if b" terminated (duration:" in out_path.read_bytes():
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return ANSI.sub("", out_path.read_text(errors="replace"))


def test_baresip_call_reaches_a_confirmed_order(tmp_path: Path) -> None:
    baresip = shutil.which("baresip")
    assert baresip, "baresip (Debian package baresip) must be installed by `make test`"
    audio = scripted_order_call()
    wav = tmp_path / "caller.wav"
    write_wav(wav, audio, RATE)
    call_s = len(audio) / RATE
    with voice_box(tmp_path) as box:
        # baresip binds its SIP port for UDP and TCP; on a busy machine another process can
        # take it between our probe and baresip's bind, which baresip reports at start-up.
        for attempt in range(3):
            phone_port = free_udp_tcp_port()
            config = write_config(tmp_path / f"baresip{attempt}", sip_port=phone_port,
                                  caller_wav=wav)
            output = run_call(dial_command(baresip, config, box.uri, int(call_s) + 40),
                              tmp_path / f"baresip{attempt}.out", tmp_path,
                              deadline_s=call_s + 30)
            if "init failed (Address already in use)" not in output:
                break
        log = box.log()
    context = f"baresip:\n{output[-4000:]}\nbox:\n{log[-4000:]}"
    assert f"Call established: {box.uri}" in output, context
    box_bye = rf"UDP 127\.0\.0\.1:{box.sip_port} -> 127\.0\.0\.1:{phone_port}\r?\nBYE sip:"
    assert re.search(box_bye, output), f"the box did not hang up with BYE\n{context}"
    store = LocalStore(box.db_path)
    orders = store.orders()
    assert len(orders) == 1, context
    lines = {(li.item_id, li.quantity, li.size) for li in orders[0].lines}
    assert lines == {("pizza", 1, "large"), ("coke", 2, None)}, context
    pizza = next(li for li in orders[0].lines if li.item_id == "pizza")
    assert [m.name for m in pizza.modifiers] == ["pepperoni"], context
    assert orders[0].caller == "5551234", context
    turns = store.turns(orders[0].call_id)
    assert [t.speaker for t in turns][:2] == ["agent", "caller"], context
