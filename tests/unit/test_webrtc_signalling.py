"""The loopback test-call signalling endpoint, over real HTTP with a real aiortc browser peer.

Bad requests get the error envelope with a stable code and nothing starts; a good offer
gets a complete answer, runs the call handler as a "TEST CALL" caller, keeps a second
offer out while it runs, and a hang-up ends it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from appliance.voice.sip_agent import CallInfo
from appliance.voice.webrtc_peer import WebRtcMedia, serve_web_calls
from appliance.voice.webrtc_signalling import TEST_CALLER, WebCallServer
from tests.unit.test_webrtc_peer import ToneTrack

Scenario = Callable[[WebCallServer, httpx.AsyncClient, list[tuple[CallInfo, int]]], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        calls: list[tuple[CallInfo, int]] = []

        async def on_call(info: CallInfo, media: object) -> None:
            assert isinstance(media, WebRtcMedia)
            got = 0
            async for _ in media.frames():  # the caller's audio, until hang-up
                got += 1
            calls.append((info, got))

        server = await serve_web_calls(0, on_call)
        assert server is not None
        assert server.host == "127.0.0.1"
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                await scenario(server, client, calls)
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_bad_requests_get_the_error_envelope_and_start_nothing() -> None:
    async def scenario(server: WebCallServer, client: httpx.AsyncClient,
                       calls: list[tuple[CallInfo, int]]) -> None:
        assert (await client.get("/healthz")).json() == {"ok": True}
        not_json = await client.post("/test-calls", content=b"sdp please")
        assert not_json.status_code == 400 and not_json.json()["code"] == "test_call.bad_offer"
        answer = await client.post("/test-calls", json={"sdp": "x", "type": "answer"})
        assert answer.status_code == 400 and answer.json()["category"] == "validation"
        no_audio = await client.post("/test-calls", json={"sdp": "v=0\r\ns=-\r\n"})
        assert no_audio.status_code == 400 and no_audio.json()["code"] == "test_call.no_audio"
        huge = await client.post("/test-calls", content=b"x" * (70 * 1024))
        assert huge.status_code == 413 and huge.json()["code"] == "test_call.too_large"
        unknown = await client.get("/test-calls/call_nope")
        assert unknown.status_code == 404 and unknown.json()["code"] == "test_call.unknown"
        assert (await client.delete("/")).json()["code"] == "test_call.not_found"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"garbage\r\n\r\n")
        reply = (await reader.read()).decode()
        assert reply.startswith("HTTP/1.1 400") and "test_call.bad_request" in reply
        assert calls == []

    run(scenario)


def test_offer_is_answered_runs_one_call_and_hangup_ends_it() -> None:
    async def scenario(server: WebCallServer, client: httpx.AsyncClient,
                       calls: list[tuple[CallInfo, int]]) -> None:
        browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        browser.addTrack(ToneTrack())
        await browser.setLocalDescription(await browser.createOffer())
        reply = await client.post("/test-calls", json={"sdp": browser.localDescription.sdp,
                                                        "type": "offer"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["type"] == "answer" and body["call_id"].startswith("call_")
        await browser.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
        state = await client.get(f"/test-calls/{body['call_id']}")
        assert state.json() == {"call_id": body["call_id"], "state": "active"}
        busy = await client.post("/test-calls", json={"sdp": browser.localDescription.sdp})
        assert busy.status_code == 409 and busy.json()["code"] == "test_call.busy"
        await asyncio.sleep(1.5)  # let the tone flow
        hung = await client.post(f"/test-calls/{body['call_id']}/hangup")
        assert json.loads(hung.text)["state"] == "ended"
        for _ in range(50):
            if calls:
                break
            await asyncio.sleep(0.05)
        [(info, frames)] = calls
        assert info.call_id == body["call_id"] and info.caller == TEST_CALLER
        assert frames > 20  # the browser's audio reached the handler as 20 ms frames
        ended = await client.get(f"/test-calls/{body['call_id']}")
        assert ended.json()["state"] == "ended"
        await browser.close()

    run(scenario)


def test_a_taken_port_turns_test_calls_off_instead_of_stopping_the_voice_process() -> None:
    async def main() -> None:
        async def on_call(info: CallInfo, media: object) -> None:
            raise AssertionError("never called")

        first = await serve_web_calls(0, on_call)
        assert first is not None
        try:
            assert await serve_web_calls(first.port, on_call) is None
        finally:
            await first.stop()

    asyncio.run(asyncio.wait_for(main(), 10))
