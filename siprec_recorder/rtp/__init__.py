"""Media layer: RTP/RTCP/SRTP reception, jitter buffer, spool records, codecs, rendering.

Live path (per datagram, on the receiving loop): :class:`~.leg.LegReceiver` ->
(:mod:`.srtp`) -> the 12-byte header (RFC 3550 section 5.1) -> :mod:`.seq` unwrapping ->
:class:`~.jitter.JitterBuffer` -> spool records (:mod:`.spoolfmt`) in one growing buffer per
leg. Offline (in a worker): :func:`~.render.render_call` decodes (:mod:`.codecs`), aligns and
mixes. :mod:`.endpoint` is the only module that touches sockets; :mod:`.pcapio` reads
captures for tests and tools.

Only the light, sans-IO names are imported here; :mod:`.render`, :mod:`.codecs` (PyAV),
:mod:`.srtp` (pylibsrtp) and :mod:`.endpoint` (asyncio) are imported where they are used.
"""

from __future__ import annotations

from .errors import RtcpParseError, RtpParseError
from .jitter import JitterBuffer
from .leg import LegReceiver
from .packet import RtpPacket, is_rtcp
from .seq import SequenceUnwrapper, TimestampUnwrapper
from .spoolfmt import SpoolRecord, encode_record, iter_records
from .stats import LegStats

__all__ = [
    "JitterBuffer",
    "LegReceiver",
    "LegStats",
    "RtcpParseError",
    "RtpPacket",
    "RtpParseError",
    "SequenceUnwrapper",
    "SpoolRecord",
    "TimestampUnwrapper",
    "encode_record",
    "is_rtcp",
    "iter_records",
]
