"""The setup UI's side of the test call: the button and script, the transcript API, and the
forwarding of offers to the voice process's real signalling endpoint (errors pass through)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from appliance.config import BoxIdentity, WebCallConfig
from appliance.setup.app import create_app
from appliance.store import LocalStore
from appliance.voice.sip_agent import CallInfo
from appliance.voice.webrtc_peer import serve_web_calls
from voxeron.ports import free_port

T0 = datetime(2025, 5, 2, 17, 45, tzinfo=UTC)


@pytest.fixture
def voice_signalling() -> Iterator[int]:
    """The voice process's signalling endpoint on its own loop in a thread; yields its port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    ports: list[int] = []

    async def on_call(info: CallInfo, media: object) -> None:
        raise AssertionError("no offer in these tests may start a call")

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
    yield ports[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def test_page_has_the_test_call_button_and_script(tmp_path: Path) -> None:
    identity = BoxIdentity(data_dir=tmp_path)
    with TestClient(app=create_app(identity, tmp_path / "box.sqlite3")) as client:
        page = client.get("/")
        script = client.get("/test-call.js")
    assert 'id="test-call-button"' in page.text and '<script src="/test-call.js">' in page.text
    assert '<noscript><meta http-equiv="refresh"' in page.text  # no reload mid-call
    assert script.status_code == 200 and "text/javascript" in script.headers["content-type"]
    assert "RTCPeerConnection" in script.text and "/api/test-call" in script.text


def test_turns_of_a_call_are_served_in_order(tmp_path: Path) -> None:
    db = tmp_path / "box.sqlite3"
    store = LocalStore(db)
    store.record_turn("call_1", "agent", "What would you like?", T0)
    store.record_turn("call_1", "caller", "a large pepperoni <pizza>", T0)
    store.close()
    with TestClient(app=create_app(BoxIdentity(data_dir=tmp_path), db)) as client:
        turns = client.get("/api/calls/call_1/turns").json()
        none = client.get("/api/calls/call_2/turns").json()
    assert [(t["speaker"], t["text"]) for t in turns] == [
        ("agent", "What would you like?"), ("caller", "a large pepperoni <pizza>")]
    assert turns[0]["at"].startswith("2025-05-02T17:45") and none == []


def test_offers_are_checked_then_forwarded_and_voice_errors_pass_through(
    tmp_path: Path, voice_signalling: int,
) -> None:
    identity = BoxIdentity(data_dir=tmp_path)
    # TestClient's client is "testclient", not loopback: allow remote browsers here.
    cfg = WebCallConfig(port=voice_signalling, remote=True)
    app = create_app(identity, tmp_path / "box.sqlite3", cfg)
    with TestClient(app=app) as client:
        junk = client.post("/api/test-call", content=b"{not json")
        no_audio = client.post("/api/test-call", json={"sdp": "v=0\r\ns=-\r\n", "type": "offer"})
        unknown = client.get("/api/test-call/call_nope")
        hangup = client.post("/api/test-call/call_nope/hangup")
    assert junk.status_code == 400 and junk.json()["code"] == "test_call.bad_offer"
    assert no_audio.status_code == 400 and no_audio.json()["code"] == "test_call.no_audio"
    assert unknown.status_code == 404 and unknown.json()["code"] == "test_call.unknown"
    assert hangup.status_code == 404


def test_voice_down_or_test_calls_off_is_a_clear_error(tmp_path: Path) -> None:
    identity = BoxIdentity(data_dir=tmp_path)
    offer = {"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer"}
    down = create_app(identity, tmp_path / "box.sqlite3",
                      WebCallConfig(port=free_port(), remote=True))
    with TestClient(app=down) as client:
        reply = client.post("/api/test-call", json=offer)
    assert reply.status_code == 503
    assert reply.json()["code"] == "test_call.voice_unavailable" and reply.json()["retryable"]
    off = create_app(identity, tmp_path / "box.sqlite3", WebCallConfig(enabled=False, remote=True))
    with TestClient(app=off) as client:
        reply = client.post("/api/test-call", json=offer)
    assert reply.status_code == 404 and reply.json()["code"] == "test_call.disabled"


def test_only_the_boxs_own_browser_may_start_a_test_call_by_default(
    tmp_path: Path, voice_signalling: int,
) -> None:
    identity = BoxIdentity(data_dir=tmp_path)
    app = create_app(identity, tmp_path / "box.sqlite3", WebCallConfig(port=voice_signalling))
    with TestClient(app=app) as client:  # a client that is not on loopback
        reply = client.post("/api/test-call", json={"sdp": "v=0\r\n", "type": "offer"})
    assert reply.status_code == 403 and reply.json()["code"] == "test_call.forbidden"
