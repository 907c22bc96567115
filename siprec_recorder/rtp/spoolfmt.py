"""The spool record format: released RTP packets of one leg, as appended to disk.

Theory of operation
-------------------
A leg's spool is a plain concatenation of records, written in the order the jitter buffer
released them (in sequence order within a sequence context). Each record is a fixed
32-octet little-endian header followed by the RTP payload::

    arrival   float64   wall-clock seconds at which the packet arrived
    ext_seq   uint64    extended sequence number (see seq.py)
    ext_ts    uint64    extended RTP timestamp
    pt        uint8     payload type
    flags     uint8     bit 0: RTP marker; bit 1: first record of a new sequence context
                        (SSRC change or stream restart: the renderer re-anchors there)
    ssrc      uint32
    length    uint16    payload length
    payload   length octets

The file is appended to and fsync'd about once a second, so a crash can leave one record
cut short at the end: :func:`iter_records` stops quietly at a truncated trailing record.
Records carry only copies of payload bytes, never references to received datagrams.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "FLAG_DISCONTINUITY",
    "FLAG_MARKER",
    "RECORD_HEADER",
    "SpoolRecord",
    "encode_record",
    "iter_records",
]

RECORD_HEADER = struct.Struct("<dQQBBIH")
FLAG_MARKER = 0x01
FLAG_DISCONTINUITY = 0x02
_MASK64 = (1 << 64) - 1
_RTP_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled RTP packet (payload copied out of the datagram)."""

    arrival: float
    ext_seq: int
    ext_ts: int
    payload_type: int
    marker: bool
    ssrc: int
    payload: bytes
    discontinuity: bool = False

    def encode(self) -> bytes:
        """This record in spool format."""
        flags = (FLAG_MARKER if self.marker else 0) | (
            FLAG_DISCONTINUITY if self.discontinuity else 0
        )
        return encode_record(
            self.arrival,
            self.ext_seq,
            self.ext_ts,
            self.payload_type,
            flags,
            self.ssrc,
            self.payload,
        )

    def to_rtp(self) -> bytes:
        """The RTP packet rebuilt from the record (RFC 3550 section 5.1).

        The header is the plain 12 octets: CSRCs, header extensions and padding are not
        spooled; sequence number and timestamp are the low 16 and 32 bits of the extended
        counters.
        """
        return (
            _RTP_HEADER.pack(
                0x80,
                (0x80 if self.marker else 0) | (self.payload_type & 0x7F),
                self.ext_seq & 0xFFFF,
                self.ext_ts & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
            + self.payload
        )


def encode_record(
    arrival: float,
    ext_seq: int,
    ext_ts: int,
    payload_type: int,
    flags: int,
    ssrc: int,
    payload: bytes,
) -> bytes:
    """Encode one record; payloads longer than 65535 octets are truncated to fit."""
    if len(payload) > 0xFFFF:
        payload = payload[:0xFFFF]
    return (
        RECORD_HEADER.pack(
            arrival,
            ext_seq & _MASK64,
            ext_ts & _MASK64,
            payload_type & 0x7F,
            flags & 0xFF,
            ssrc & 0xFFFFFFFF,
            len(payload),
        )
        + payload
    )


def iter_records(data: bytes | bytearray | memoryview) -> Iterator[SpoolRecord]:
    """Yield the records in ``data``; a truncated trailing record is ignored."""
    buf = bytes(data)
    n = len(buf)
    pos = 0
    hsize = RECORD_HEADER.size
    unpack = RECORD_HEADER.unpack_from
    while pos + hsize <= n:
        arrival, ext_seq, ext_ts, pt, flags, ssrc, length = unpack(buf, pos)
        start = pos + hsize
        end = start + length
        if end > n:
            return
        yield SpoolRecord(
            arrival,
            ext_seq,
            ext_ts,
            pt,
            bool(flags & FLAG_MARKER),
            ssrc,
            buf[start:end],
            bool(flags & FLAG_DISCONTINUITY),
        )
        pos = end
