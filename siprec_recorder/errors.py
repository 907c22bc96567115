"""Exception types shared by every layer.

Errors split into two kinds, as in h11: a :class:`RemoteProtocolError` means a peer sent
something we cannot accept, and carries the SIP status we should answer with
(``status_hint``; ``None`` means drop silently). A :class:`LocalProtocolError` means our own
code misused an API. Configuration problems are :class:`ConfigError` and always name the key;
:class:`OperatorError` is a problem of the machine the operator must fix (a port another program
holds, a folder that is missing or not writable) and names the path or port and what to do.
Both reach the operator as one line and a non-zero exit, never as a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "LocalProtocolError",
    "OperatorError",
    "RecorderError",
    "RemoteProtocolError",
]


class RecorderError(Exception):
    """Base class of every exception raised by siprec-recorder on purpose."""


class RemoteProtocolError(RecorderError):
    """A peer sent input we cannot accept.

    ``status_hint`` is the SIP status code to answer with, or ``None`` when the message
    must be dropped without an answer (RFC 3261 section 18.1.2, 18.3).
    """

    def __init__(self, message: str, status_hint: int | None = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


class LocalProtocolError(RecorderError):
    """Our own code used an API the wrong way."""


class ConfigError(RecorderError):
    """The configuration is invalid; the message names the offending key."""


class OperatorError(RecorderError):
    """Something outside the program is not as the configuration says; the message names the
    path, port or key and says what to do."""
