"""The asyncio edge of the SIP layer: sockets and one timer around a sans-IO :class:`SipCore`.

Theory of operation (the aioquic adapter shape): every input -- a datagram, a framed TCP/TLS
message, a timer -- is passed to the core with ``loop.time()`` as ``now``; afterwards
:meth:`SipService._pump` writes ``core.datagrams_to_send()`` to the right socket or
connection, hands each event to ``on_event`` and re-arms the single ``loop.call_at`` timer at
``core.get_timer()``. Nothing here decides anything about SIP.

* ``source_filter(address) -> bool``: when it returns ``False`` the input is ignored (a TCP
  connection is closed) and ``on_rejected_source(address, data)`` is told, so that the upper
  layer can choose between silence and a ``403`` (sent with :meth:`SipService.send_raw`).
* Bounded: ``max_message_size`` per message and per stream buffer, ``max_connections``
  (in all) and ``max_connections_per_source``, idle stream connections closed after
  ``idle_timeout`` seconds (long by default: an SRC's connection may carry nothing for the
  length of a call, and our BYE needs it), a connection holding an incomplete message after
  ``incomplete_timeout``, one that never completed a message after
  ``first_message_timeout``. A stream that cannot be framed gets a ``400``/``513`` when its
  header section was readable, then is closed.
* TLS: the listener accepts plain TCP and runs the handshake itself (``loop.start_tls``,
  ``tls_handshake_timeout``), so that a connection still in (or never starting) its
  handshake counts against the connection caps from its first moment.
* Every connection refused or closed by one of these budgets is counted in
  :attr:`SipService.refused` by the budget's name (``connections``,
  ``connections-per-source``, ``first-message-timeout``, ``incomplete-message-timeout``,
  ``idle-timeout``, ``tls-handshake-timeout``, ``tls-handshake-failed``), the names of the
  log lines; :meth:`SipService.open_connections` counts what is open (the metrics read both).
* A broken connection or a failing callback is logged and never raises out of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import socket
import ssl
from collections.abc import Callable

from siprec_recorder.errors import ConfigError, LocalProtocolError
from siprec_recorder.sip.core import SipCore
from siprec_recorder.sip.errors import SipParseError
from siprec_recorder.sip.events import Address, Event, MessageRejected, TransactionKey
from siprec_recorder.sip.headers import Via
from siprec_recorder.sip.message import SipRequest, SipResponse
from siprec_recorder.sip.transaction import new_branch
from siprec_recorder.sip.transport.tcp import StreamProtocol
from siprec_recorder.sip.transport.tls import TlsSettings
from siprec_recorder.sip.transport.udp import UdpProtocol

UDP_RECV_BUFFER = 4 << 20  # octets of SIP datagrams the kernel may queue per listener

__all__ = ["SipService", "TlsSettings", "parse_listen"]

log = logging.getLogger(__name__)


def parse_listen(spec: str) -> tuple[str, str, int]:
    """``'udp:127.0.0.1:5060'`` / ``'tcp:[::1]:5060'`` -> ``(transport, host, port)``.

    Raises :class:`ValueError` naming what is wrong; the configuration checks every listener
    with it at start, so a bad one never reaches :meth:`SipService.start`.
    """
    transport, sep, rest = spec.partition(":")
    transport = transport.lower()
    if not sep or transport not in ("udp", "tcp", "tls"):
        raise ValueError(f"expected udp:|tcp:|tls:HOST:PORT, got {spec!r}")
    if rest.startswith("["):
        host, sep2, port_s = rest[1:].partition("]:")
        if not sep2:
            raise ValueError(f"bad IPv6 listen address {spec!r}")
    else:
        host, sep2, port_s = rest.rpartition(":")
        if not sep2:
            raise ValueError(f"missing port in {spec!r}")
    if not host:
        raise ValueError(f"missing host in {spec!r}")
    if not (port_s.isascii() and port_s.isdigit()):
        raise ValueError(f"bad port in {spec!r}")
    port = int(port_s)
    if port > 65535:
        raise ValueError(f"port out of range in {spec!r}")
    return transport, host, port


class SipService:
    """Runs a :class:`SipCore` on real sockets."""

    def __init__(
        self,
        core: SipCore,
        on_event: Callable[[Event], None],
        *,
        source_filter: Callable[[Address], bool] | None = None,
        on_rejected_source: Callable[[Address, bytes], None] | None = None,
        idle_timeout: float = 3600.0,
        incomplete_timeout: float = 32.0,
        max_connections: int = 1024,
        max_connections_per_source: int = 64,
        first_message_timeout: float = 32.0,
        tls_handshake_timeout: float = 10.0,
    ) -> None:
        self.core = core
        self.on_event = on_event
        self.source_filter = source_filter
        self.on_rejected_source = on_rejected_source
        self.idle_timeout = idle_timeout
        self.incomplete_timeout = incomplete_timeout
        self.max_connections = max_connections
        # Budgets against starvation: connections per source host, a connection that never
        # completes a message, a TLS handshake that never ends (see docs/security.md).
        self.max_connections_per_source = max_connections_per_source
        self.first_message_timeout = first_message_timeout
        self.tls_handshake_timeout = tls_handshake_timeout
        self._per_host: dict[str, int] = {}
        self.refused: dict[str, int] = {}  # budget name -> connections refused or closed
        self._handshakes: set[asyncio.Task[None]] = set()
        self.bound: list[tuple[str, str, int]] = []
        self._udp: list[UdpProtocol] = []
        self._servers: list[asyncio.Server] = []
        self._connections: dict[int, StreamProtocol] = {}
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._tls: TlsSettings | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(
        self, listen: list[str], tls: TlsSettings | ssl.SSLContext | None = None
    ) -> None:
        """Bind every listener (``'udp:127.0.0.1:5060'``...); TLS needs ``tls`` (a server
        ``SSLContext``, or :class:`TlsSettings` to also give a client context)."""
        self._loop = asyncio.get_running_loop()
        if isinstance(tls, ssl.SSLContext):
            tls = TlsSettings(tls)
        self._tls = tls
        try:
            for spec in listen:
                await self._listen(spec, tls)
        except BaseException:
            await self.stop()  # nothing half-open is left behind
            raise
        self._sweeper = self._loop.create_task(self._sweep_idle())

    async def _listen(self, spec: str, tls: TlsSettings | None) -> None:
        loop = asyncio.get_running_loop()
        transport, host, port = parse_listen(spec)
        if transport == "udp":
            udp_transport, protocol = await loop.create_datagram_endpoint(
                lambda: UdpProtocol(self._on_datagram), local_addr=(host, port)
            )
            self._udp.append(protocol)
            sock = udp_transport.get_extra_info("socket")
            if sock is not None:
                # A burst of INVITEs (hundreds a second, each with SDP and metadata) must
                # queue while the loop is busy, not be dropped by the kernel and cost the SRC
                # a 500 ms retransmission. The kernel caps this at net.core.rmem_max.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECV_BUFFER)
            sockname = udp_transport.get_extra_info("sockname")
        else:
            if transport == "tls" and tls is None:
                raise ConfigError(f"listen {spec!r}: TLS needs TlsSettings")
            # TLS listeners accept TCP; _stream_open counts the connection, then starts TLS.
            server = await loop.create_server(
                functools.partial(self._new_stream, transport, handshake=transport == "tls"),
                host,
                port,
            )
            self._servers.append(server)
            sockname = server.sockets[0].getsockname()
        self.bound.append((transport, host, int(sockname[1])))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for protocol in self._udp:
            if protocol.transport is not None:
                protocol.transport.close()
        for conn in list(self._connections.values()):
            conn.close()
        for task in list(self._handshakes):
            task.cancel()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._udp.clear()
        self._servers.clear()

    # -- API for the layer above -----------------------------------------------------------

    def respond(self, tx: TransactionKey, response: SipResponse) -> None:
        self.core.respond(tx, response, self._now())
        self._pump()

    def send_request(self, request: SipRequest, destination: Address) -> TransactionKey:
        """Send a non-INVITE request; a top Via with a fresh branch is added when missing."""
        if "Via" not in request.headers:
            request = SipRequest(
                request.method,
                request.uri,
                request.headers.add("Via", self._via_for(destination).serialize()),
                request.body,
            )
        key = self.core.send_request(request, destination, self._now())
        self._pump()
        return key

    def send_raw(self, data: bytes, destination: Address) -> None:
        """Send bytes outside any transaction (e.g. a stateless 403 to a refused source)."""
        self._send(data, destination)

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    def _via_for(self, destination: Address) -> Via:
        for transport, host, port in self.bound:
            if transport == destination.transport:
                return Via(
                    transport.upper(),
                    host if ":" not in host else f"[{host}]",
                    port,
                    (("branch", new_branch()), ("rport", None)),
                )
        raise LocalProtocolError(f"no {destination.transport} listener to send from")

    def _allowed(self, address: Address, data: bytes) -> bool:
        if self.source_filter is None or self._guard(self.source_filter, address):
            return True
        if self.on_rejected_source is not None:
            self._guard(self.on_rejected_source, address, data)
        return False

    def _guard(self, func: Callable[..., object], *args: object) -> bool:
        try:
            return bool(func(*args))
        except Exception:
            log.exception("SIP callback %r failed", func)
            return False

    def _on_datagram(self, data: bytes, peer: tuple[str, int]) -> None:
        address = Address("udp", peer[0], peer[1])
        if self._allowed(address, data):
            self._receive(data, address)

    def _receive(self, data: bytes, address: Address) -> None:
        # An exception escaping a DatagramProtocol callback would close the socket for
        # everyone: a bug on one message must cost only that message.
        try:
            self.core.receive(data, address, self._now())
        except Exception:
            log.exception("SIP core failed on a message from %s", address)
        self._pump()

    def open_connections(self) -> dict[str, int]:
        """Stream connections open now, by transport (``tls-handshake``: TLS not yet up)."""
        out = {"tcp": 0, "tls": 0, "tls-handshake": 0}
        for conn in self._connections.values():
            kind = "tls-handshake" if conn.handshaking else conn.kind
            out[kind] = out.get(kind, 0) + 1
        return out

    def _count(self, budget: str) -> None:
        self.refused[budget] = self.refused.get(budget, 0) + 1

    def _new_stream(self, transport: str, handshake: bool = False) -> StreamProtocol:
        return StreamProtocol(
            next(self._ids),
            self.core.max_message_size,
            self._now,
            functools.partial(self._stream_open, transport=transport, handshake=handshake),
            functools.partial(self._stream_message, transport=transport),
            functools.partial(self._stream_error, transport=transport),
            self._stream_closed,
        )

    def _stream_address(self, conn: StreamProtocol, transport: str) -> Address:
        if transport == "tls":
            return Address("tls", conn.peer[0], conn.peer[1], conn.connection_id)
        return Address("tcp", conn.peer[0], conn.peer[1], conn.connection_id)

    def _stream_open(self, conn: StreamProtocol, transport: str, handshake: bool = False) -> bool:
        if len(self._connections) >= self.max_connections:
            self._count("connections")
            log.warning(
                "refusing SIP %s connection from %s: budget connections (%d) reached",
                transport,
                conn.peer,
                self.max_connections,
            )
            return False
        host = conn.peer[0]
        if self.max_connections_per_source and (
            self._per_host.get(host, 0) >= self.max_connections_per_source
        ):
            self._count("connections-per-source")
            log.warning(
                "refusing SIP %s connection from %s: budget connections-per-source (%d) reached",
                transport,
                conn.peer,
                self.max_connections_per_source,
            )
            return False
        if not self._allowed(self._stream_address(conn, transport), b""):
            return False
        self._connections[conn.connection_id] = conn
        self._per_host[host] = self._per_host.get(host, 0) + 1
        conn.kind = transport
        if handshake:
            self._start_tls(conn)
        return True

    def _start_tls(self, conn: StreamProtocol) -> None:
        assert self._tls is not None and self._loop is not None and conn.transport is not None
        conn.handshaking = True
        conn.transport.pause_reading()  # the ClientHello waits in the kernel for start_tls
        task = self._loop.create_task(self._handshake(conn, conn.transport, self._tls.server))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(
        self, conn: StreamProtocol, raw: asyncio.Transport, context: ssl.SSLContext
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            tls = await loop.start_tls(
                raw,
                conn,
                context,
                server_side=True,
                ssl_handshake_timeout=self.tls_handshake_timeout,
            )
        except (OSError, ssl.SSLError, asyncio.CancelledError, RuntimeError) as exc:
            timed_out = loop.time() - started >= self.tls_handshake_timeout * 0.95
            budget = "tls-handshake-timeout" if timed_out else "tls-handshake-failed"
            if not isinstance(exc, asyncio.CancelledError) and not conn.closing:
                self._count(budget)
                log.info("SIP TLS connection from %s closed: %s (%s)", conn.peer, budget, exc)
            raw.close()
            # The TLS layer never made the connection, so it never reports the close either.
            self._stream_closed(conn)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if tls is None:  # closed meanwhile
            self._stream_closed(conn)
            return
        conn.tls_established(tls)

    def _stream_message(self, conn: StreamProtocol, data: bytes, transport: str) -> None:
        self._receive(data, self._stream_address(conn, transport))

    def _stream_error(self, conn: StreamProtocol, exc: SipParseError, transport: str) -> None:
        address = self._stream_address(conn, transport)
        if isinstance(exc.partial, bytes) and exc.status_hint is not None:
            self.core.reject_stream_head(exc.partial, address, exc)  # 400/513, then close
            self._pump()
            return
        self._guard(self.on_event, MessageRejected(address, exc.message, None))

    def _stream_closed(self, conn: StreamProtocol) -> None:
        if self._connections.pop(conn.connection_id, None) is not None:
            host = conn.peer[0]
            left = self._per_host.get(host, 1) - 1
            if left > 0:
                self._per_host[host] = left
            else:
                self._per_host.pop(host, None)

    async def _open_stream(self, data: bytes, destination: Address) -> None:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if destination.transport == "tls":
            context = (self._tls.client if self._tls else None) or ssl.create_default_context()
        try:
            _, conn = await loop.create_connection(
                lambda: self._new_stream(destination.transport),
                destination.host,
                destination.port,
                ssl=context,
            )
            conn.write(data)
        except (OSError, ssl.SSLError) as exc:
            log.warning("cannot connect to %s:%s: %s", destination.host, destination.port, exc)

    def _send(self, data: bytes, destination: Address) -> None:
        try:
            if destination.transport == "udp":
                family_v6 = ":" in destination.host
                for protocol in self._udp:
                    transport = protocol.transport
                    if transport is None or transport.is_closing():
                        continue
                    sock_v6 = ":" in str(transport.get_extra_info("sockname")[0])
                    if sock_v6 == family_v6:
                        transport.sendto(data, (destination.host, destination.port))
                        return
                log.warning("no UDP socket to reach %s", destination.host)
                return
            conn = self._connections.get(destination.connection_id or -1)
            if conn is not None:
                conn.write(data)
            elif self._loop is not None:
                self._loop.create_task(self._open_stream(data, destination))
        except (OSError, RuntimeError) as exc:
            log.warning("SIP send to %s failed: %s", destination, exc)

    def _pump(self) -> None:
        for data, destination in self.core.datagrams_to_send():
            self._send(data, destination)
        while (event := self.core.next_event()) is not None:
            self._guard(self.on_event, event)
        # on_event may have answered; flush again
        for data, destination in self.core.datagrams_to_send():
            self._send(data, destination)
        self._arm_timer()

    def _arm_timer(self) -> None:
        when = self.core.get_timer()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None and self._loop is not None:
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.core.handle_timer(self._now())
        except Exception:
            log.exception("SIP core failed on a timer")
        self._pump()

    async def _sweep_idle(self) -> None:
        while True:
            shortest = min(self.idle_timeout, self.incomplete_timeout, self.first_message_timeout)
            await asyncio.sleep(max(shortest / 4, 0.05))
            now = self._now()
            for conn in list(self._connections.values()):
                # A half-received message (e.g. Content-Length larger than what was sent,
                # RFC 4475 section 3.1.2.2) gets a shorter grace than an idle connection,
                # counted from its first byte: a byte every few seconds (slowloris) does
                # not extend it. A connection that never completed a message gets
                # first_message_timeout, however often it sends.
                if conn.framer.buffered and conn.message_started_at < now - self.incomplete_timeout:
                    self._close_for(conn, "incomplete-message-timeout")
                elif not conn.messages and conn.opened_at < now - self.first_message_timeout:
                    self._close_for(conn, "first-message-timeout")
                elif conn.last_activity < now - self.idle_timeout:
                    self._close_for(conn, "idle-timeout")

    def _close_for(self, conn: StreamProtocol, budget: str) -> None:
        if not conn.closing:
            self._count(budget)
            log.info("SIP %s connection from %s closed: %s", conn.kind, conn.peer, budget)
        conn.close()
