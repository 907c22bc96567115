"""siprec-recorder: an on-premise SIPREC (RFC 7866) session recording server."""

__version__ = "0.1.0"
