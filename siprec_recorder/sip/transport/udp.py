"""UDP edge: one asyncio ``DatagramProtocol`` per listening socket (RFC 3261 section 18).

Each datagram is copied out of the loop's buffer (see DESIGN.md section 4, the mapping
trap) and handed to the service as one message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

__all__ = ["UdpProtocol"]


class UdpProtocol(asyncio.DatagramProtocol):
    """Forwards datagrams to ``on_datagram(data, (host, port))``."""

    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.on_datagram(bytes(memoryview(data)), (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP errors: nothing to do
        pass
