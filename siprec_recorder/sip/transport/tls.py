"""TLS edge: SIP over TLS (RFC 3261 section 26.2.1) is the TCP edge with an SSL context.

The recorder never builds its own certificates or contexts: the application hands a ready
``ssl.SSLContext`` in :class:`TlsSettings` (server side, and optionally one for connections
we open to send BYE when the peer's connection is gone).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

__all__ = ["TlsSettings"]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """SSL contexts for the TLS listeners (``server``) and outgoing connections (``client``)."""

    server: ssl.SSLContext
    client: ssl.SSLContext | None = None
