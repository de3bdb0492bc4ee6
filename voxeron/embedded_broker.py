"""The embedded MQTT broker of the demo: amqtt on loopback, the one module that touches amqtt.

amqtt marks clients of its anonymous-auth plugin as anonymous and then forgets their
persistent sessions and queued QoS 1 messages; the sync link needs both, so this broker
admits every client with its own plugin that does not set that mark. We own the listening
socket (amqtt's "external" listener), so port 0 works and the bound port is known.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from sync.structured_log import setup_logging

log = logging.getLogger(__name__)


class BrokerStartError(RuntimeError):
    """The embedded broker could not bind its port or start in time."""


class OpenDoorAuth(BaseAuthPlugin):
    """Admit every client (the demo broker listens on loopback only), keeping its session."""

    @dataclass
    class Config:
        """No options: every client is admitted."""

    async def authenticate(self, *, session: Session) -> bool:
        return True


def _broker_config() -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "external", "bind": "127.0.0.1:0"}},
        "plugins": {f"{__name__}.OpenDoorAuth": {}},
        "timeout_disconnect_delay": 0,
    }


class EmbeddedBroker:
    """An amqtt broker on its own asyncio loop in a daemon thread, with blocking start/stop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with port 0)."""
        if self._port is None:
            raise BrokerStartError("broker is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        """Bind and start serving; BrokerStartError if the port is taken or start times out."""
        if self._thread is not None:
            raise BrokerStartError("broker already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise BrokerStartError(f"embedded broker did not start in {timeout}s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise BrokerStartError(
                f"embedded broker cannot listen on {self.host}:{self._requested_port}: {self._error}"
            ) from self._error
        log.info("embedded mqtt broker listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every client connection and the listening socket; safe to call twice."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None or loop is None or stopped is None:
            return
        loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout)
        self._thread = None
        log.info("embedded mqtt broker stopped")

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        # asyncio.run also cancels the tasks amqtt leaves behind before closing the loop.
        asyncio.run(self._serve())

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        try:
            broker = Broker(_broker_config())
            await broker.start()
        except Exception as exc:  # reported to start()'s caller, never lost in this thread
            self._fail(exc)
            return
        try:
            server = await asyncio.start_server(
                lambda r, w: broker.external_connected(
                    StreamReaderAdapter(r), StreamWriterAdapter(w), "default"
                ),
                self.host, self._requested_port, reuse_address=True,
            )
        except OSError as exc:
            await broker.shutdown()
            self._fail(exc)
            return
        self._port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            await broker.shutdown()
            await server.wait_closed()


def run_broker(host: str = "127.0.0.1", port: int = 1883) -> None:
    """Serve until SIGTERM or SIGINT: the `voxeron broker run` process."""
    setup_logging("broker")
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        broker = EmbeddedBroker(host, port).start()
    except BrokerStartError as exc:
        raise SystemExit(f"voxeron broker: {exc}") from exc
    try:
        while not done.wait(0.5):
            pass
    finally:
        broker.stop()
