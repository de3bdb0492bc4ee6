"""The UDP/TCP transport and server-transaction layer under the SIP agent (RFC 3261 17-18).

It owns the sockets (TCP framing lives in sip_tcp.py), answers every response to the datagram's source address (rport-style;
never a host from a message), replays answers to retransmitted requests, retransmits
final responses until acknowledged, and turns unparseable input into 400 or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from appliance.voice.sip_dialog import (
    T1,
    T2,
    InviteTransaction,
    ResponseCache,
    Retransmit,
    TxKey,
    new_tag,
    transaction_key,
)
from appliance.voice.sip_message import (
    SipParseError,
    SipRequest,
    SipResponse,
    build_response,
    parse_message,
    salvage_request,
)
from appliance.voice.sip_tcp import FramingError, SipTcpServer, TcpSource
from appliance.voice.sip_uri import format_host, parse_via
from sync.structured_log import fields

log = logging.getLogger(__name__)

Address = tuple[str, int]
_WILDCARD = ("", "0.0.0.0", "::")


def warning_header(text: str) -> tuple[str, str]:
    """A Warning header (399 = miscellaneous) that explains a refusal to the peer's logs."""
    clean = re.sub(r'[^ -~]|["\\]', "", text)[:120]
    return "Warning", f'399 voxeron "{clean}"'


def advertised_address(bound: str, remote_ip: str) -> str:
    """Our address as `remote_ip` reaches it (a routing lookup: UDP connect sends nothing)."""
    if bound not in _WILDCARD:
        return bound
    family = socket.AF_INET6 if ":" in remote_ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((remote_ip, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, layer: SipTransactionLayer) -> None:
        self.layer = layer

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:  # type: ignore[override]
        self.layer._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error", extra=fields(error=str(exc)))


class SipTransactionLayer:
    """Socket, retransmission and transaction matching; subclasses implement the requests."""

    def __init__(self, host: str, port: int, *, t1: float = T1, t2: float = T2,
                 tcp: bool = False, max_datagram: int = 65535) -> None:
        self.host, self._port = host, port
        self._t1, self._t2 = t1, t2
        self.max_datagram = max_datagram
        self._transport: asyncio.DatagramTransport | None = None
        self.tcp = SipTcpServer(self._on_datagram, self._on_framing_error) if tcp else None
        self._invites: dict[TxKey, InviteTransaction] = {}
        self._cache = ResponseCache(ttl_s=64 * t1)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the UDP socket, and the TCP listener on the same port when enabled (port 0
        picks a free port that both transports can have, see `port`)."""
        loop = asyncio.get_running_loop()
        for attempt in range(8):
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _SipProtocol(self), local_addr=(self.host, self._port))
            if self.tcp is None:
                break
            try:
                await self.tcp.start(self.host, self.port)
                break
            except OSError:
                self._transport.close()
                if self._port != 0 or attempt == 7:
                    raise
        log.info("SIP agent listening", extra=fields(host=self.host, port=self.port,
                                                     transports="udp,tcp" if self.tcp else "udp"))

    @property
    def port(self) -> int:
        """The bound UDP port (the real one when constructed with port 0)."""
        if self._transport is None:
            return self._port
        return int(self._transport.get_extra_info("sockname")[1])

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self.tcp is not None:
            await self.tcp.close()

    # -- to be implemented by the transaction user -----------------------------------------

    def _on_request(self, request: SipRequest, source: Address) -> None:
        raise NotImplementedError

    def _on_response(self, response: SipResponse, source: Address) -> None:
        raise NotImplementedError

    # -- plumbing --------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _send(self, data: bytes, dest: Address) -> None:
        if isinstance(dest, TcpSource):
            if self.tcp is not None:
                self.tcp.send(data, dest)
        elif self._transport is not None:
            self._transport.sendto(data, dest)

    @staticmethod
    def via_transport(dest: Address) -> str:
        """The Via transport of a request we send to `dest` (the connection it came on)."""
        return "TCP" if isinstance(dest, TcpSource) else "UDP"

    def send_datagram(self, data: bytes, dest: Address) -> None:
        """Send from the agent's own socket (a REGISTER client shares it, so a registrar that
        rewrites Contact to our source address still reaches the agent)."""
        self._send(data, dest)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP agent task failed", exc_info=task.exception())

    def _on_datagram(self, data: bytes, source: Address) -> None:
        try:
            self._dispatch(data, source)
        except Exception:  # one datagram must never stop the agent
            log.exception("SIP datagram handling failed", extra=fields(source=format_host(*source)))

    def _dispatch(self, data: bytes, source: Address) -> None:
        if not data.strip(b"\r\n\t "):
            return  # CRLF keep-alive
        if len(data) > self.max_datagram:
            self._reject_unparseable(data[:4096], source, SipParseError(
                f"message of {len(data)} bytes is too large", status=513))
            return
        self._prune()
        try:
            message = parse_message(data)
        except SipParseError as err:
            self._reject_unparseable(data, source, err)
            return
        if isinstance(message, SipResponse):
            self._on_response(message, source)
            return
        vias = message.headers.values("Via")
        vias[0] = str(parse_via(vias[0]).with_received(*source))
        message.headers.set_values("Via", vias)
        if message.method not in ("INVITE", "ACK"):
            cached = self._cache.get(transaction_key(message), self._now())
            if cached is not None:
                self._send(cached, source)  # retransmitted request: same answer
                return
        try:
            self._on_request(message, source)
        except Exception:
            log.exception("SIP request handling failed", extra=fields(method=message.method))
            if message.method != "ACK":
                self._reply(message, source, 500)

    def _on_framing_error(self, error: FramingError, source: TcpSource) -> None:
        """A TCP message we cannot frame: 400 if it can be addressed; the stream then closes."""
        self._reject_unparseable(error.head + b"\r\n\r\n", source, SipParseError(error.reason))

    def _reject_unparseable(self, data: bytes, source: Address, err: SipParseError) -> None:
        salvaged = salvage_request(data)
        if salvaged is None or salvaged[0] == "ACK":
            log.warning("dropped unparseable datagram", extra=fields(
                source=format_host(*source), size=len(data), error=str(err)[:200]))
            return
        reply = build_response(salvaged[1], err.status, to_tag=new_tag(),
                               extra=[warning_header(str(err))])
        self._send(reply.to_bytes(), source)
        log.warning("answered unparseable request", extra=fields(
            source=format_host(*source), status=err.status, error=str(err)[:200]))

    def _reply(self, request: SipRequest, source: Address, status: int,
               to_tag: str | None = None, *, extra: Iterable[tuple[str, str]] = (),
               body: bytes = b"") -> bytes:
        """Answer `request` at its source; non-INVITE answers are kept for retransmissions."""
        tag = to_tag or (new_tag() if status > 100 else None)
        data = build_response(request, status, to_tag=tag, extra=[*extra, ("Server", "voxeron")],
                              body=body).to_bytes()
        self._send(data, source)
        if request.method not in ("INVITE", "ACK"):
            self._cache.put(transaction_key(request), data, self._now())
        return data

    def _final(self, tx: InviteTransaction, invite: SipRequest, source: Address, status: int,
               to_tag: str | None = None, extra: Iterable[tuple[str, str]] = ()) -> None:
        """A final non-2xx answer to an INVITE, retransmitted until its ACK (Timers G, H)."""
        data = self._reply(invite, source, status, to_tag, extra=extra)
        tx.last_response, tx.final_status, tx.final_at = data, status, self._now()
        self._spawn(self._retransmit(data, source, lambda: not tx.acked, None))

    async def _retransmit(self, data: bytes, dest: Address, pending: Callable[[], bool],
                          give_up: Callable[[], None] | None) -> None:
        """Resend `data` on the RFC 3261 schedule while `pending()`; call `give_up` at 64*T1."""
        schedule = Retransmit(self._now(), self._t1, self._t2)
        while True:
            await asyncio.sleep(max(0.0, schedule.wakeup - self._now()))
            if not pending():
                return
            decision = schedule.poll(self._now())
            if decision == "resend" and not isinstance(dest, TcpSource):  # TCP does not lose it
                self._send(data, dest)
            elif decision == "give_up":
                if give_up is not None:
                    give_up()
                return

    def _prune(self) -> None:
        now, horizon = self._now(), 64 * self._t1
        for key, tx in list(self._invites.items()):
            if tx.final_at is not None and now - tx.final_at > horizon:
                del self._invites[key]
