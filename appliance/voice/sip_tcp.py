"""SIP over TCP (RFC 3261 18.3): stream framing by Content-Length and a connection table.

A TCP peer is addressed by its connection (`TcpSource`, the socket's remote address), so
responses and in-dialog requests reuse the connection the peer opened; we never dial
out. Framing is pure (`StreamFramer`); a message without a usable Content-Length, or
one too large, gets a 400 where one can be addressed and the connection is closed, so
a bad peer can neither hang the agent nor make it buffer without bound.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from sync.structured_log import fields

log = logging.getLogger(__name__)

MAX_HEADER = 64 * 1024
MAX_BODY = 64 * 1024
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(.*?)[ \t]*\r?$", re.I | re.M)


class TcpSource(NamedTuple):
    """The remote end of a TCP connection; `_send` to it writes on that connection."""

    host: str
    port: int


@dataclass(frozen=True)
class FramingError:
    """Why the stream cannot be read on; `head` is what is known of the bad message."""

    reason: str
    head: bytes


class StreamFramer:
    """Cuts a byte stream into SIP messages (Content-Length is mandatory on streams)."""

    def __init__(self, max_header: int = MAX_HEADER, max_body: int = MAX_BODY) -> None:
        self._buf = bytearray()
        self.max_header, self.max_body = max_header, max_body

    @property
    def pending(self) -> bool:
        """True while part of a message is buffered."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes | FramingError]:
        """Messages completed by `data`; b"" stands for a CRLFCRLF keep-alive ping (RFC 5626).

        After a FramingError nothing further is returned: the stream is out of step.
        """
        self._buf += data
        out: list[bytes | FramingError] = []
        while True:
            if self._buf.startswith(b"\r\n\r\n"):
                del self._buf[:4]
                out.append(b"")
                continue
            while self._buf[:2] == b"\r\n" and len(self._buf) >= 4 or self._buf[:1] == b"\n":
                del self._buf[: 2 if self._buf[:1] == b"\r" else 1]
            item = self._next()
            if item is None:
                return out
            out.append(item)
            if isinstance(item, FramingError):
                self._buf.clear()
                return out

    def _next(self) -> bytes | FramingError | None:
        end = self._buf.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end, sep = self._buf.find(b"\n\n"), 2
        if end < 0:
            if len(self._buf) > self.max_header:
                return FramingError("header section too large", bytes(self._buf[:2048]))
            return None
        head = bytes(self._buf[:end])
        lengths = {m.strip() for m in _CONTENT_LENGTH.findall(head)}
        if not lengths:
            return FramingError("Content-Length is required over TCP", head)
        if len(lengths) > 1:
            return FramingError("conflicting Content-Length headers", head)
        value = lengths.pop()
        if not value.isdigit() or len(value) > 10:
            return FramingError(f"bad Content-Length {value[:20]!r}", head)
        if int(value) > self.max_body:
            return FramingError(f"body of {int(value)} bytes is too large", head)
        total = end + sep + int(value)
        if len(self._buf) < total:
            return None
        message = bytes(self._buf[:total])
        del self._buf[:total]
        return message


MessageSink = Callable[[bytes, TcpSource], None]
ErrorSink = Callable[[FramingError, TcpSource], None]


class SipTcpServer:
    """The TCP listener next to the UDP socket; one reader task per connection."""

    def __init__(self, on_message: MessageSink, on_error: ErrorSink, *, max_connections: int = 64,
                 idle_s: float = 300.0, partial_s: float = 32.0) -> None:
        self._on_message, self._on_error = on_message, on_error
        self.max_connections, self.idle_s, self.partial_s = max_connections, idle_s, partial_s
        self._writers: dict[TcpSource, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (the UDP socket's port: both transports share it)."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEADER)

    @property
    def connections(self) -> int:
        return len(self._writers)

    def send(self, data: bytes, dest: TcpSource) -> bool:
        """Write on the connection `dest` opened; False when it is gone (we never dial out)."""
        writer = self._writers.get(dest)
        if writer is None or writer.is_closing():
            log.info("SIP TCP peer gone, message dropped", extra=fields(peer=f"{dest.host}:{dest.port}"))
            return False
        writer.write(data)
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers.values()):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = TcpSource(str(peer[0]), int(peer[1]))
        if len(self._writers) >= self.max_connections:
            log.warning("SIP TCP connection refused: too many", extra=fields(peer=source.host))
            writer.close()
            return
        self._writers[source] = writer
        framer = StreamFramer()
        try:
            while True:
                wait = self.partial_s if framer.pending else self.idle_s
                try:
                    data = await asyncio.wait_for(reader.read(16384), wait)
                except TimeoutError:
                    log.info("SIP TCP connection idle, closed", extra=fields(
                        peer=source.host, partial=framer.pending))
                    return
                if not data:
                    return
                for item in framer.feed(data):
                    if isinstance(item, FramingError):
                        self._on_error(item, source)
                        await writer.drain()
                        return
                    if item == b"":
                        writer.write(b"\r\n")  # keep-alive pong (RFC 5626 4.4.1)
                    else:
                        self._on_message(item, source)
        except (ConnectionError, OSError) as err:
            log.info("SIP TCP connection lost", extra=fields(peer=source.host, error=str(err)))
        finally:
            self._writers.pop(source, None)
            writer.close()
