"""RTCP compound packets (RFC 3550 section 6): SR, RR, SDES, BYE; others kept opaque.

Theory of operation
-------------------
The recorder never sends RTCP; it reads what the SRC sends for statistics: sender reports
give (NTP, RTP timestamp) pairs and packet/octet counts, receiver report blocks give the
peer's view of loss and jitter. :func:`parse_rtcp` walks a compound packet (each packet
``V=2 | P | count(5) | PT(8) | length(16, in 32-bit words minus one)``) and returns frozen
dataclasses; unknown packet types (APP, RTPFB, PSFB, XR...) come back as
:class:`RtcpUnknown`. Any inconsistency raises :class:`RtcpParseError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .errors import RtcpParseError

__all__ = [
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "ReportBlock",
    "RtcpBye",
    "RtcpPacket",
    "RtcpReceiverReport",
    "RtcpSdes",
    "RtcpSenderReport",
    "RtcpUnknown",
    "parse_rtcp",
    "summarize_reports",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

_REPORT = struct.Struct("!IBBHIIII")  # ssrc, fraction, lost(24), highest, jitter, lsr, dlsr


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int  # out of 256
    packets_lost: int  # cumulative, signed 24-bit
    highest_sequence: int
    jitter: int  # timestamp units
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...]

    @property
    def ntp_seconds(self) -> float:
        """The NTP timestamp as seconds since 1900."""
        return (self.ntp_timestamp >> 32) + (self.ntp_timestamp & 0xFFFFFFFF) / 2**32


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...]


@dataclass(frozen=True, slots=True)
class RtcpSdes:
    chunks: tuple[tuple[int, tuple[tuple[int, bytes], ...]], ...]  # (ssrc, ((type, value),..))


@dataclass(frozen=True, slots=True)
class RtcpBye:
    sources: tuple[int, ...]
    reason: bytes | None


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    packet_type: int
    count: int
    body: bytes


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpUnknown


def _report_blocks(body: bytes, pos: int, count: int) -> tuple[ReportBlock, ...]:
    if pos + 24 * count > len(body):
        raise RtcpParseError("RTCP report blocks truncated")
    blocks = []
    for _ in range(count):
        ssrc, fraction, lost_hi, lost_lo, highest, jitter, lsr, dlsr = _REPORT.unpack_from(
            body, pos
        )
        lost = (lost_hi << 16) | lost_lo
        if lost & 0x800000:
            lost -= 1 << 24
        blocks.append(ReportBlock(ssrc, fraction, lost, highest, jitter, lsr, dlsr))
        pos += 24
    return tuple(blocks)


def _sdes(body: bytes, count: int) -> RtcpSdes:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpParseError("RTCP SDES chunk truncated")
        ssrc = struct.unpack_from("!I", body, pos)[0]
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtcpParseError("RTCP SDES items not terminated")
            item_type = body[pos]
            if item_type == 0:
                pos = (pos + 4) & ~3  # null item then padding to a 32-bit boundary
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpParseError("RTCP SDES item truncated")
            length = body[pos + 1]
            items.append((item_type, body[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        chunks.append((ssrc, tuple(items)))
    return RtcpSdes(tuple(chunks))


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse an RTCP compound packet; raises :class:`RtcpParseError`."""
    data = bytes(data)
    out: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise RtcpParseError(f"RTCP packet too short ({len(data)} bytes)")
    while pos < len(data):
        if pos + 4 > len(data):
            raise RtcpParseError("RTCP header truncated")
        b0, pt, words = struct.unpack_from("!BBH", data, pos)
        if b0 >> 6 != 2:
            raise RtcpParseError(f"RTCP version {b0 >> 6} is not 2")
        end = pos + 4 * (words + 1)
        if end > len(data):
            raise RtcpParseError("RTCP length exceeds the datagram")
        body = data[pos + 4 : end]
        if b0 & 0x20:
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise RtcpParseError("RTCP padding invalid")
            body = body[: -body[-1]]
        count = b0 & 0x1F
        if pt == RTCP_SR:
            if len(body) < 24:
                raise RtcpParseError("RTCP SR truncated")
            ssrc, ntp_hi, ntp_lo, rtp_ts, pkts, octets = struct.unpack_from("!IIIIII", body)
            out.append(
                RtcpSenderReport(
                    ssrc,
                    (ntp_hi << 32) | ntp_lo,
                    rtp_ts,
                    pkts,
                    octets,
                    _report_blocks(body, 24, count),
                )
            )
        elif pt == RTCP_RR:
            if len(body) < 4:
                raise RtcpParseError("RTCP RR truncated")
            ssrc = struct.unpack_from("!I", body)[0]
            out.append(RtcpReceiverReport(ssrc, _report_blocks(body, 4, count)))
        elif pt == RTCP_SDES:
            out.append(_sdes(body, count))
        elif pt == RTCP_BYE:
            if len(body) < 4 * count:
                raise RtcpParseError("RTCP BYE truncated")
            sources = struct.unpack_from(f"!{count}I", body) if count else ()
            reason = None
            rest = body[4 * count :]
            if rest:
                if 1 + rest[0] > len(rest):
                    raise RtcpParseError("RTCP BYE reason truncated")
                reason = rest[1 : 1 + rest[0]]
            out.append(RtcpBye(tuple(sources), reason))
        else:
            out.append(RtcpUnknown(pt, count, body))
        pos = end
    return out


def summarize_reports(packets: list[RtcpPacket], now: float, into: dict[str, Any]) -> None:
    """Keep the latest SR and the peer's reception report values in ``into`` (JSON-ready)."""
    for p in packets:
        if isinstance(p, RtcpSenderReport):
            into["sr_count"] = into.get("sr_count", 0) + 1
            into["last_sr"] = {
                "ssrc": p.ssrc,
                "ntp": p.ntp_seconds,
                "rtp_timestamp": p.rtp_timestamp,
                "packet_count": p.packet_count,
                "octet_count": p.octet_count,
                "received_at": now,
            }
            if "first_sr" not in into:
                into["first_sr"] = into["last_sr"]
        if isinstance(p, RtcpSenderReport | RtcpReceiverReport) and p.reports:
            b = p.reports[0]
            into["peer_fraction_lost"] = b.fraction_lost / 256.0
            into["peer_packets_lost"] = b.packets_lost
            into["peer_jitter_ts"] = b.jitter
        if isinstance(p, RtcpBye):
            into["bye"] = True
