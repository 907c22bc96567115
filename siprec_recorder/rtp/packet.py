"""RTP packets (RFC 3550 section 5) and RTP/RTCP demultiplexing (RFC 5761 section 4).

Theory of operation
-------------------
The fixed header is 12 octets::

     0                   1                   2                   3
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers  (CC x 4)   |
    | [extension: profile(16) length-in-words(16) data (4*length)]  |
    | payload ...                              [padding ... count]  |

:class:`RtpPacket` is the full, frozen parse used by tests, tools and the renderer;
:func:`payload_bounds` is the bounds arithmetic alone. The per-datagram path does not build
an :class:`RtpPacket`: :class:`~.leg.LegReceiver` unpacks the fixed header itself (one
``struct.unpack_from``) and copies only the payload out of the datagram.

RTP and RTCP on one port (rtcp-mux, RFC 5761 section 4): the second octet of an RTCP packet
is its packet type 200..204 (SR, RR, SDES, BYE, APP), i.e. an RTP marker bit plus a
"payload type" of 72..76. Those RTP payload types are reserved, so :func:`is_rtcp` looks
at ``byte1 & 0x7f`` in 64..95 (the range RFC 5761 tells RTP not to use).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import RtpParseError

__all__ = ["RTP_HEADER_SIZE", "RtpPacket", "is_rtcp", "payload_bounds"]

RTP_HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_EXT = struct.Struct("!HH")


def is_rtcp(data: bytes) -> bool:
    """True if ``data`` looks like RTCP rather than RTP (RFC 5761 section 4 demultiplexing)."""
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


def payload_bounds(data: bytes) -> tuple[int, int]:
    """Return ``(start, end)`` of the payload of the RTP packet ``data``.

    Raises :class:`RtpParseError` if the header, CSRC list, extension or padding do not fit.
    """
    n = len(data)
    if n < RTP_HEADER_SIZE:
        raise RtpParseError(f"RTP packet too short ({n} bytes)")
    b0 = data[0]
    if b0 >> 6 != 2:
        raise RtpParseError(f"RTP version {b0 >> 6} is not 2")
    start = RTP_HEADER_SIZE + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if start + 4 > n:
            raise RtpParseError("RTP extension header truncated")
        words = (data[start + 2] << 8) | data[start + 3]
        start += 4 + 4 * words
    end = n
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0:
            raise RtpParseError("RTP padding count is zero")
        end -= pad
    if start > end:
        raise RtpParseError("RTP header, extension or padding longer than the packet")
    return start, end


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet, fully parsed.

    ``padding`` is the number of padding octets (0 = none; on serialise they are zeros
    followed by the count). ``extension`` is ``(profile, data)`` or None.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0
    version: int = 2

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raises :class:`RtpParseError`."""
        data = bytes(data)
        start, end = payload_bounds(data)
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        cc = b0 & 0x0F
        csrc = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
        extension = None
        if b0 & 0x10:
            pos = RTP_HEADER_SIZE + 4 * cc
            profile, words = _EXT.unpack_from(data, pos)
            extension = (profile, data[pos + 4 : pos + 4 + 4 * words])
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=data[start:end],
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=len(data) - end,
            version=2,
        )

    def serialize(self) -> bytes:
        """Encode the packet to wire format."""
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs")
        if not 0 <= self.padding <= 255:
            raise ValueError("padding must be 0..255 octets")
        b0 = (self.version << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [
            _HEADER.pack(
                b0,
                b1,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            profile, ext = self.extension
            if len(ext) % 4:
                raise ValueError("extension data must be a multiple of 4 octets")
            parts.append(_EXT.pack(profile, len(ext) // 4))
            parts.append(ext)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)
