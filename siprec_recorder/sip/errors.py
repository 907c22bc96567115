"""Errors raised by the SIP layer.

Every error a peer can provoke is a :class:`~siprec_recorder.errors.RemoteProtocolError`
subclass whose ``status_hint`` says what to answer (``None``: drop silently, as RFC 3261
section 18.1.2 / 18.3 asks for malformed responses and unframeable stream data).
:class:`SipParseError` may carry ``partial``: the message as far as it could be read, so that
the core can still build a ``400`` that names the problem (RFC 3261 section 21.4.1).
"""

from __future__ import annotations

from typing import Any

from siprec_recorder.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "LocalProtocolError",
    "MessageTooLarge",
    "MultipartError",
    "SdpError",
    "SipParseError",
]


class SipParseError(RemoteProtocolError):
    """A SIP message could not be parsed or failed validation."""

    def __init__(self, message: str, status_hint: int | None = 400, *, partial: Any = None) -> None:
        super().__init__(message, status_hint)
        #: the request/response as far as it could be read (headers only), or ``None``
        self.partial = partial


class MessageTooLarge(SipParseError):
    """A message (or a stream buffer) exceeded the configured size limit.

    On a stream this means the connection must be closed: framing is lost.
    """

    def __init__(self, message: str, status_hint: int | None = 513, *, partial: Any = None) -> None:
        super().__init__(message, status_hint, partial=partial)


class MultipartError(RemoteProtocolError):
    """A MIME multipart body (RFC 2046, RFC 5621) is malformed."""


class SdpError(RemoteProtocolError):
    """An SDP document (RFC 8866) is malformed."""

    def __init__(self, message: str, status_hint: int | None = 488) -> None:
        super().__init__(message, status_hint)
