"""The asyncio edge of the media layer: UDP sockets feeding sans-IO leg receivers.

Theory of operation
-------------------
:class:`PortPool` owns the RTP port range (``[rtp] port_min..port_max``). Each leg gets an
even RTP port and the odd port above it for RTCP (RFC 3550 section 11), bound on the
configured address. Released pairs go to the back of the free list, so a port is not
reused while stale packets of the previous call may still be arriving. A pair that cannot
be bound (taken by another process) is skipped and retried later. When no pair is left,
:class:`PortsExhaustedError` says so clearly (the session layer refuses the stream).

:class:`RtpEndpoint` is a ``DatagramProtocol``: ``datagram_received`` hands the datagram and
the arrival time straight to the leg's :meth:`LegReceiver.receive` (which copies what it
keeps) and returns; nothing else runs on the receiving loop. The RTCP port feeds
:meth:`LegReceiver.receive_rtcp`. The clock is a parameter (``time.time`` by default).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..errors import RecorderError

__all__ = ["PacketSink", "PortPool", "PortsExhaustedError", "RtpEndpoint"]

log = logging.getLogger(__name__)

RECV_BUFFER = 1 << 20


class PacketSink(Protocol):
    """What an endpoint feeds: :class:`~siprec_recorder.rtp.leg.LegReceiver` satisfies it."""

    def receive(self, datagram: bytes, now_wall: float) -> None: ...

    def receive_rtcp(self, datagram: bytes, now_wall: float) -> None: ...


class PortsExhaustedError(RecorderError):
    """No free RTP/RTCP port pair is left in the configured range."""


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, sink: PacketSink, clock: Callable[[], float]) -> None:
        self.sink = sink
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sink.receive_rtcp(data, self.clock())

    def error_received(self, exc: Exception) -> None:  # ICMP errors: nothing to do
        log.debug("RTCP socket error: %s", exc)


class RtpEndpoint(asyncio.DatagramProtocol):
    """Receives one leg's RTP (and, through a companion protocol, its RTCP)."""

    def __init__(self, sink: PacketSink, port: int, clock: Callable[[], float] = time.time):
        self.sink = sink
        self.port = port
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.rtcp: _RtcpProtocol | None = None
        self.datagrams = 0
        self.last_source: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        self.last_source = addr
        self.sink.receive(data, self.clock())

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error on port %d: %s", self.port, exc)

    @property
    def closed(self) -> bool:
        return self.transport is None

    def close(self) -> None:
        """Close both sockets (idempotent)."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.rtcp is not None and self.rtcp.transport is not None:
            self.rtcp.transport.close()
            self.rtcp.transport = None


def _bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


_P = TypeVar("_P", bound=asyncio.DatagramProtocol)


def _factory(protocol: _P) -> Callable[[], _P]:
    return lambda: protocol


class PortPool:
    """Allocates even RTP ports (plus the odd RTCP port) from ``port_min..port_max``."""

    def __init__(
        self, address: str, port_min: int, port_max: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        first = port_min + (port_min % 2)
        if port_max < first + 1:
            raise ValueError(f"empty RTP port range {port_min}-{port_max}")
        self.address = address
        self.port_min = port_min
        self.port_max = port_max
        self.clock = clock
        # A pair needs port and port + 1 inside the range.
        self._free: deque[int] = deque(range(first, port_max, 2))
        self.capacity = len(self._free)
        self._in_use: dict[int, RtpEndpoint] = {}

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    @property
    def available(self) -> int:
        return len(self._free)

    async def open(self, sink: PacketSink, *, rtcp_mux: bool = False) -> RtpEndpoint:
        """Bind a free pair and start feeding ``sink``; raises :class:`PortsExhaustedError`."""
        loop = asyncio.get_running_loop()
        tries = len(self._free)
        while tries > 0:
            tries -= 1
            port = self._free.popleft()
            try:
                rtp_sock = _bind(self.address, port)
            except OSError:
                self._free.append(port)
                continue
            try:
                rtcp_sock = _bind(self.address, port + 1)
            except OSError:
                rtp_sock.close()
                self._free.append(port)
                continue
            endpoint = RtpEndpoint(sink, port, self.clock)
            await loop.create_datagram_endpoint(_factory(endpoint), sock=rtp_sock)
            if rtcp_mux:
                # RFC 5761: RTCP arrives on the RTP port; keep the odd port reserved anyway.
                rtcp_sock.close()
            else:
                rtcp = _RtcpProtocol(sink, self.clock)
                await loop.create_datagram_endpoint(_factory(rtcp), sock=rtcp_sock)
                endpoint.rtcp = rtcp
            self._in_use[port] = endpoint
            return endpoint
        raise PortsExhaustedError(
            f"no free RTP port pair in {self.port_min}-{self.port_max} on {self.address} "
            f"({self.capacity} pairs, {len(self._in_use)} in use)"
        )

    def release(self, endpoint: RtpEndpoint) -> None:
        """Close the endpoint's sockets and return its pair to the pool (idempotent)."""
        endpoint.close()
        if self._in_use.pop(endpoint.port, None) is not None:
            self._free.append(endpoint.port)

    def close_all(self) -> None:
        for ep in list(self._in_use.values()):
            self.release(ep)
