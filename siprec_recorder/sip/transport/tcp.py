"""TCP edge: one asyncio ``Protocol`` per connection, framing by Content-Length.

A connection has an id (``Address.connection_id``) so that responses go back on it
(RFC 3261 section 18.2.2). Framing errors and oversized messages close the connection,
since the start of the next message can no longer be found (section 18.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from siprec_recorder.sip.errors import SipParseError
from siprec_recorder.sip.parser import StreamFramer

__all__ = ["StreamProtocol"]


class StreamProtocol(asyncio.Protocol):
    """Feeds a :class:`StreamFramer` and forwards whole messages.

    ``on_open(protocol) -> bool`` may refuse the connection (it is then closed);
    ``on_message(protocol, data)`` gets each message; ``on_error(protocol, error)`` is told
    about framing errors before the connection is closed; ``on_close(protocol)`` at the end.
    """

    def __init__(
        self,
        connection_id: int,
        max_message_size: int,
        now: Callable[[], float],
        on_open: Callable[[StreamProtocol], bool],
        on_message: Callable[[StreamProtocol, bytes], None],
        on_error: Callable[[StreamProtocol, SipParseError], None],
        on_close: Callable[[StreamProtocol], None],
    ) -> None:
        self.connection_id = connection_id
        self.framer = StreamFramer(max_message_size)
        self._now = now
        self.last_activity = now()
        self.opened_at = self.last_activity
        self.message_started_at = self.last_activity  # first byte of the message being framed
        self.messages = 0  # complete messages received
        self.peer: tuple[str, int] = ("", 0)
        self.transport: asyncio.Transport | None = None
        self.kind = "tcp"  # "tcp" or "tls", set by whoever accepts the connection
        self.handshaking = False  # TLS: the handshake is under way
        self.closing = False
        self._held: list[bytes] = []  # written while handshaking (see tls_established)
        self._on_open = on_open
        self._on_message = on_message
        self._on_error = on_error
        self._on_close = on_close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        if not self._on_open(self):
            transport.close()

    CLOSE_GRACE = 1.0  # seconds between a framing error and the close, after good messages

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._now()
        if not self.framer.buffered:
            self.message_started_at = self.last_activity
        try:
            messages = self.framer.feed(data)
        except SipParseError as exc:
            self._on_error(self, exc)
            self.close()
            return
        for message in messages:
            self.messages += 1
            self._on_message(self, message)
        if messages and self.framer.buffered:
            self.message_started_at = self.last_activity  # the next message began here
        error = self.framer.failed
        if error is not None:
            # Good messages first, then the framing error closes the stream -- a moment
            # later, so that the answers to those messages can still go out on it.
            self._on_error(self, error)
            asyncio.get_running_loop().call_later(self.CLOSE_GRACE, self.close)

    def tls_established(self, transport: asyncio.Transport) -> None:
        """The TLS handshake ended: write on ``transport`` from now on.

        The first messages can arrive (and be answered) before the code that awaited the
        handshake runs again; what was written meanwhile was held and goes out now."""
        self.transport = transport
        self.handshaking = False
        held, self._held = self._held, []
        for data in held:
            self.write(data)

    def write(self, data: bytes) -> None:
        if self.handshaking:
            self._held.append(data)
            return
        if self.transport is not None and not self.transport.is_closing():
            self.last_activity = self._now()
            self.transport.write(data)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_close(self)
