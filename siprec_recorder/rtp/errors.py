"""Errors of the media layer: malformed RTP/RTCP/spool input from peers.

They are :class:`~siprec_recorder.errors.RemoteProtocolError` with ``status_hint=None``: a bad
datagram is counted and dropped, never answered and never allowed to stop a receive loop.
"""

from __future__ import annotations

from ..errors import RemoteProtocolError

__all__ = ["RtcpParseError", "RtpParseError"]


class RtpParseError(RemoteProtocolError):
    """An RTP packet (or RTP payload) is malformed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_hint=None)


class RtcpParseError(RtpParseError):
    """An RTCP compound packet is malformed."""
