"""Signalling for the setup UI's WebRTC test call: a tiny HTTP endpoint on 127.0.0.1 only.

Why the peer lives in voxeron-voice and the page talks to voxeron-setup: the voice process
already owns the loaded ASR, TTS and dialog and the call limit, so a test call is a normal
CallSession there, with nothing loaded twice. The page, though, is served by the setup
UI, so its fetches stay same-origin (no CORS, one port for the owner to know), and the
setup process forwards the SDP offer over loopback HTTP to this endpoint. Binding it to
127.0.0.1 means nothing new is reachable from the LAN; the media then flows directly
between the browser and the voice process (host ICE candidates, no STUN/TURN).

Plain asyncio HTTP/1.1 (one request per connection, JSON bodies) keeps the web framework
inside the setup UI's adapter. No aiortc here: the setup process imports these models.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, Field, ValidationError

from appliance.voice.sip_dialog import CallInfo
from sync.contracts.errors import ErrorCategory, ErrorEnvelope
from sync.ids import new_id
from sync.structured_log import fields, log_context

log = logging.getLogger(__name__)

TEST_CALLER = "TEST CALL"  # the caller on the order, so the kitchen ticket says so
MAX_BODY = 64 * 1024
MAX_HEAD = 16 * 1024
READ_TIMEOUT_S = 10.0


class WebCallOffer(BaseModel):
    """The browser's complete SDP offer (ICE gathering finished; no trickle)."""

    sdp: str = Field(min_length=1, max_length=MAX_BODY)
    type: Literal["offer"] = "offer"


class WebCallAnswer(BaseModel):
    """The box's complete SDP answer and the call id to follow the transcript by."""

    call_id: str
    sdp: str
    type: Literal["answer"] = "answer"


class WebCallState(BaseModel):
    """Whether a test call is still up; `ended` once either side hung up."""

    call_id: str
    state: Literal["active", "ended"]


class OfferRejected(Exception):
    """An offer that cannot be answered; `code` is stable, the message is safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class WebMedia(Protocol):
    """What the server needs of the call's media (the SIP agent's MediaChannel has more)."""

    @property
    def closed(self) -> asyncio.Event: ...

    def close(self) -> None: ...


AnswerOffer = Callable[[str], Awaitable[tuple[str, WebMedia]]]
CallRunner = Callable[[CallInfo, WebMedia], Awaitable[None]]


@dataclass
class _Call:
    call_id: str
    media: WebMedia
    task: asyncio.Task[None] | None = None

    @property
    def state(self) -> WebCallState:
        ended = self.media.closed.is_set() and (self.task is None or self.task.done())
        return WebCallState(call_id=self.call_id, state="ended" if ended else "active")


class HttpError(Exception):
    def __init__(self, status: int, code: str, category: ErrorCategory, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.envelope = ErrorEnvelope(code=code, category=category, message=message)


class WebCallServer:
    """Answers test-call offers, one call at a time, and runs each through `on_call`."""

    def __init__(self, port: int, answer: AnswerOffer, on_call: CallRunner, *,
                 host: str = "127.0.0.1") -> None:
        self.host, self._port = host, port
        self._answer, self._on_call = answer, on_call
        self._calls: dict[str, _Call] = {}
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._port,
                                                  limit=MAX_HEAD)
        log.info("test call signalling ready", extra=fields(host=self.host, port=self.port))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for call in self._calls.values():
            call.media.close()
        tasks = [c.task for c in self._calls.values() if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # -- HTTP ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._request(reader), READ_TIMEOUT_S)
        except HttpError as err:
            status, body = err.status, err.envelope.model_dump_json()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, ValueError):
            status = 400
            body = ErrorEnvelope(code="test_call.bad_request", category="validation",
                                 message="malformed or incomplete HTTP request").model_dump_json()
        except Exception:
            log.exception("test call signalling failed")
            status = 500
            body = ErrorEnvelope(code="test_call.internal", category="unavailable",
                                 message="the voice process could not handle the request",
                                 retryable=True).model_dump_json()
        data = body.encode()
        head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n")
        try:
            writer.write(head.encode() + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, str]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in header_lines if line)}
        length = int(headers.get("content-length", "0"))
        if length < 0 or length > MAX_BODY:
            raise HttpError(413, "test_call.too_large", "validation",
                            f"request body over {MAX_BODY} bytes")
        body = await reader.readexactly(length) if length else b""
        return await self._route(method, path.split("?")[0], body)

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["healthz"]:
            return 200, json.dumps({"ok": True})
        if method == "POST" and parts == ["test-calls"]:
            return 200, (await self.offer(body)).model_dump_json()
        if len(parts) >= 2 and parts[0] == "test-calls" and parts[1] in self._calls:
            call = self._calls[parts[1]]
            if method == "GET" and len(parts) == 2:
                return 200, call.state.model_dump_json()
            if method == "POST" and parts[2:] == ["hangup"]:
                call.media.close()
                return 200, WebCallState(call_id=call.call_id, state="ended").model_dump_json()
        if len(parts) >= 2 and parts[0] == "test-calls":
            raise HttpError(404, "test_call.unknown", "validation", "no such test call")
        raise HttpError(404, "test_call.not_found", "validation", f"no route {method} {path}")

    # -- calls ---------------------------------------------------------------------------

    async def offer(self, body: bytes) -> WebCallAnswer:
        """Answer an offer and start its call; one test call at a time."""
        try:
            offer = WebCallOffer.model_validate_json(body)
        except ValidationError as err:
            raise HttpError(400, "test_call.bad_offer", "validation",
                            f"expected JSON {{sdp, type: offer}}: {err.errors()[0]['msg']}") from err
        if any(c.state.state == "active" for c in self._calls.values()):
            raise HttpError(409, "test_call.busy", "rate_limit",
                            "a test call is already in progress")
        try:
            sdp, media = await self._answer(offer.sdp)
        except OfferRejected as err:
            raise HttpError(400, err.code, "validation", err.message) from err
        call = _Call(new_id("call"), media)
        self._calls = {call.call_id: call}  # keep only the latest: its state is what the page polls
        info = CallInfo(call_id=call.call_id, sip_call_id=call.call_id, from_uri="webrtc:setup-ui",
                        caller=TEST_CALLER, to_user="test-call", remote=("127.0.0.1", 0))
        call.task = asyncio.create_task(self._run(info, media), name=f"test-call-{call.call_id}")
        return WebCallAnswer(call_id=call.call_id, sdp=sdp)

    async def _run(self, info: CallInfo, media: WebMedia) -> None:
        with log_context(call_id=info.call_id, call_kind="test_call"):
            log.info("test call started", extra=fields(test_call=True))
            try:
                await self._on_call(info, media)
            except Exception:
                log.exception("test call failed")
            finally:
                media.close()
                log.info("test call ended", extra=fields(test_call=True))
