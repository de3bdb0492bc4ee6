"""The setup UI's "Test call" in headless Chromium reaches a confirmed order.

Real voxeron-voice and voxeron-setup processes; Debian's Chromium driven by Playwright
clicks the button on the setup page. Its microphone is Chromium's fake capture device
playing a Piper-synthesized caller from a WAV: one file holds the whole scripted order
with pauses long enough for the agent's prompts (the agent only listens when idle), and
`%noloop` stops Chromium from replaying it. Media goes browser <-> voice process over
WebRTC (Opus, host candidates), signalling page -> setup -> voice over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path

import httpx
import numpy as np
import pytest

from appliance.config import BoxIdentity, WebCallConfig
from appliance.edge.ticket_layout import layout_ticket, ticket_text
from appliance.setup.app import create_app
from appliance.store import LocalStore
from appliance.voice.sip_agent import CallInfo
from appliance.voice.webrtc_peer import WebRtcMedia, serve_web_calls
from tests.peers.box_process import VoiceBox, relaxed_policy, voice_box
from tests.serve_asgi import serve_asgi
from voxeron.caller_voices import write_wav
from voxeron.ports import free_port

CHROMIUM = "/usr/bin/chromium"
RATE = 48000  # what Chromium's capture runs at; no resampling in the fake device
# The caller's lines, and the pause after each: time for the agent to decode and answer.
LINES = ["I'd like a large pepperoni pizza please.", "No, that's all.", "Yes."]
FIRST_WAIT_S = 7.0  # getUserMedia -> offer/answer -> ICE/DTLS -> greeting
GAPS_S = [9.0, 13.0, 8.0]


def caller_wav(path: Path) -> float:
    """Write the caller's whole side as one 48 kHz WAV; return its length in seconds."""
    from appliance.voice.tts_piper import PiperTts

    tts = PiperTts()
    parts = [np.zeros(int(FIRST_WAIT_S * RATE), dtype=np.int16)]
    for text, gap in zip(LINES, GAPS_S, strict=True):
        parts += [tts.synthesize(text, RATE), np.zeros(int(gap * RATE), dtype=np.int16)]
    audio = np.concatenate(parts)
    write_wav(path, audio, RATE)
    return len(audio) / RATE


@contextmanager
def setup_ui(box: VoiceBox, test_call_port: int, log_path: Path) -> Iterator[str]:
    """voxeron-setup on a free loopback port, on the voice box's data; yields its base URL."""
    port = free_port()
    env = {**os.environ, "VOXERON_DATA_DIR": str(box.data_dir), "VOXERON_SETUP_HOST": "127.0.0.1",
           "VOXERON_SETUP_PORT": str(port), "VOXERON_TEST_CALL_PORT": str(test_call_port)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "voxeron", "appliance", "setup"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"setup UI did not start:\n{log_path.read_text(errors='replace')}")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_browser_test_call_reaches_a_confirmed_order(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    wav = tmp_path / "caller.wav"
    call_s = caller_wav(wav)
    signalling = free_port()
    with voice_box(tmp_path, VOXERON_TEST_CALL_PORT=str(signalling),
                   VOXERON_VOICE_RUNTIME_POLICY=str(relaxed_policy(tmp_path))) as box, \
            setup_ui(box, signalling, tmp_path / "setup.log") as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
            "--autoplay-policy=no-user-gesture-required", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(base)
            page.click("#test-call-button")
            page.wait_for_selector("body[data-test-call='ended'], body[data-test-call^='error']",
                                   state="attached", timeout=(call_s + 30) * 1000)
            page_state = page.get_attribute("body", "data-test-call")
            call_id = page.get_attribute("body", "data-test-call-id")
            shown = page.inner_text("#test-call-transcript")
        finally:
            browser.close()
        voice_log = box.log()
    context = f"page: {page_state}\n{shown}\nvoice log:\n{voice_log[-5000:]}"
    assert page_state == "ended" and call_id, context

    store = LocalStore(box.db_path)
    turns = store.turns(call_id)
    for t in turns:  # figures for the report, never asserted on
        print(f"{t.speaker:6} {t.latency_ms or 0:7.0f} ms  {t.text}")
    heard = " ".join(t.text.lower() for t in turns if t.speaker == "caller")
    assert "pepperoni" in heard and "pizza" in heard, context  # the agent heard the caller
    assert "pepperoni" in shown.lower(), context  # and the page showed the transcript
    [order] = store.orders()
    assert order.call_id == call_id and order.caller == "TEST CALL", context
    pizza = next(li for li in order.lines if li.item_id == "pizza")
    assert pizza.size == "large" and [m.name for m in pizza.modifiers] == ["pepperoni"], context
    assert "CALLER TEST CALL" in ticket_text(layout_ticket(order, UTC))

    records = [json.loads(line) for line in voice_log.splitlines() if line.startswith("{")]
    started = [r for r in records if r.get("msg") == "test call started"]
    assert started and started[0].get("call_kind") == "test_call", context
    assert started[0].get("call_id") == call_id, context


@contextmanager
def signalling_in_thread(on_call_frames: list[int]) -> Iterator[int]:
    """The voice side's signalling and WebRTC peer on its own loop; each call's handler just
    listens until the browser hangs up and records how many 20 ms frames it heard."""
    loop = asyncio.new_event_loop()
    ready, stop, ports = threading.Event(), asyncio.Event(), []

    async def on_call(info: CallInfo, media: object) -> None:
        assert isinstance(media, WebRtcMedia) and info.caller == "TEST CALL"
        on_call_frames.append(0)
        async for _ in media.frames():
            on_call_frames[-1] += 1

    async def main() -> None:
        server = await serve_web_calls(0, on_call)
        assert server is not None
        ports.append(server.port)
        ready.set()
        await stop.wait()
        await server.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield ports[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@contextmanager
def setup_in_thread(tmp_path: Path, signalling_port: int) -> Iterator[str]:
    app = create_app(BoxIdentity(data_dir=tmp_path), tmp_path / "box.sqlite3",
                     WebCallConfig(port=signalling_port))
    with serve_asgi(app) as url:
        yield url


def test_page_connects_shows_the_call_and_hangs_up(tmp_path: Path) -> None:
    """The page's own flow, fast: no speech models, Chromium's default fake microphone."""
    from playwright.sync_api import sync_playwright

    frames: list[int] = []
    with signalling_in_thread(frames) as port, setup_in_thread(tmp_path, port) as base, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        try:
            page = browser.new_page()
            page.goto(base)
            assert page.is_disabled("#test-call-hangup")
            page.click("#test-call-button")
            page.wait_for_selector("body[data-test-call='in call']", state="attached",
                                   timeout=20000)
            page.wait_for_timeout(1500)  # let the fake microphone talk
            page.click("#test-call-hangup")
            page.wait_for_selector("body[data-test-call='ended']", state="attached", timeout=10000)
            assert page.is_enabled("#test-call-button") and page.is_disabled("#test-call-hangup")
            call_id = page.get_attribute("body", "data-test-call-id")
            state = httpx.get(f"{base}/api/test-call/{call_id}").json()
        finally:
            browser.close()
    assert state == {"call_id": call_id, "state": "ended"}
    assert len(frames) == 1 and frames[0] > 25, frames  # > 0.5 s of the browser's audio heard
