"""A minimal reader (and writer) of capture files: classic pcap and pcapng, UDP over IP.

Theory of operation
-------------------
Used by tests, replay tools and benchmarks to pull UDP payloads out of captures; it is not
a general dissector. Classic pcap (magic ``a1b2c3d4`` microseconds or ``a1b23c4d``
nanoseconds, either byte order) and pcapng (Section Header, Interface Description,
Enhanced and Simple Packet blocks; per-interface link type and ``if_tsresol``) are read.
Link types: Ethernet (1, with 802.1Q/802.1ad VLAN tags), raw IP (101, 228, 229, and
BSD loopback/null 0), Linux cooked SLL (113) and SLL2 (276). IPv4 fragments other than
the first, and non-UDP packets, are skipped; IPv6 extension headers are walked.

:func:`iter_udp` yields :class:`UdpDatagram` (timestamp, src, dst, sport, dport, payload).
:func:`write_udp_pcap` does the reverse for IPv4: a classic pcap (microsecond stamps, link
type raw IP, 101) in which each datagram is an IPv4 packet (RFC 791, header checksum set)
carrying a UDP header whose checksum is 0, "none computed" (RFC 768), which IPv4 allows.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["PcapError", "UdpDatagram", "iter_frames", "iter_udp", "read_udp", "write_udp_pcap"]


class PcapError(ValueError):
    """The file is not a capture this reader understands."""


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    timestamp: float
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


def _classic(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    magic = data[:4]
    table = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    endian, scale = table[magic]
    if len(data) < 24:
        raise PcapError("pcap global header truncated")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    pos = 24
    rec = struct.Struct(endian + "IIII")
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, pos)
        pos += 16
        if pos + incl > len(data):
            return
        yield sec + frac * scale, linktype, data[pos : pos + incl]
        pos += incl


def _pcapng(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    pos = 0
    endian = "<"
    interfaces: list[tuple[int, float]] = []
    while pos + 12 <= len(data):
        btype = struct.unpack_from(endian + "I", data, pos)[0]
        if btype == 0x0A0D0D0A:
            bom = data[pos + 8 : pos + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        blen = struct.unpack_from(endian + "I", data, pos + 4)[0]
        if blen < 12 or pos + blen > len(data):
            return
        body = data[pos + 8 : pos + blen - 4]
        if btype == 1 and len(body) >= 8:  # Interface Description Block
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            resol = 1e-6
            opos = 8
            while opos + 4 <= len(body):
                code, olen = struct.unpack_from(endian + "HH", body, opos)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    v = body[opos + 4]
                    resol = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
                opos += 4 + ((olen + 3) & ~3)
            interfaces.append((linktype, resol))
        elif btype == 6 and len(body) >= 20:  # Enhanced Packet Block
            iface, ts_hi, ts_lo, cap = struct.unpack_from(endian + "IIII", body, 0)
            if iface < len(interfaces):
                linktype, resol = interfaces[iface]
                yield ((ts_hi << 32) | ts_lo) * resol, linktype, body[20 : 20 + cap]
        elif btype == 3 and len(body) >= 4 and interfaces:  # Simple Packet Block
            yield 0.0, interfaces[0][0], body[4:]
        pos += blen


def iter_frames(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    """(timestamp, linktype, frame) for every packet of a pcap or pcapng image."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng(data)
    elif data[:4] in (
        b"\xd4\xc3\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\x3c\x4d",
    ):
        yield from _classic(data)
    else:
        raise PcapError("not a pcap or pcapng file")


def _network(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype-ish: 4 or 6, IP packet) or None."""
    if linktype == 1:  # Ethernet
        pos = 12
        if len(frame) < 14:
            return None
        etype = (frame[12] << 8) | frame[13]
        pos = 14
        while etype in (0x8100, 0x88A8) and len(frame) >= pos + 4:
            etype = (frame[pos + 2] << 8) | frame[pos + 3]
            pos += 4
        ip = frame[pos:]
    elif linktype == 113:  # Linux cooked
        if len(frame) < 16:
            return None
        etype = (frame[14] << 8) | frame[15]
        ip = frame[16:]
    elif linktype == 276:  # Linux cooked v2
        if len(frame) < 20:
            return None
        etype = (frame[0] << 8) | frame[1]
        ip = frame[20:]
    elif linktype == 0:  # BSD loopback
        ip = frame[4:]
        etype = 0
    elif linktype in (101, 12, 14, 228, 229):
        ip = frame
        etype = 0
    else:
        return None
    if not ip:
        return None
    version = ip[0] >> 4
    if etype == 0x0800 or (etype == 0 and version == 4):
        return 4, ip
    if etype == 0x86DD or (etype == 0 and version == 6):
        return 6, ip
    return None


def _udp(version: int, ip: bytes) -> tuple[str, str, bytes] | None:
    if version == 4:
        if len(ip) < 20:
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = (ip[2] << 8) | ip[3]
        frag = ((ip[6] << 8) | ip[7]) & 0x1FFF
        if ip[9] != 17 or frag != 0:
            return None
        end = min(len(ip), total) if total else len(ip)
        return (
            str(ipaddress.IPv4Address(ip[12:16])),
            str(ipaddress.IPv4Address(ip[16:20])),
            ip[ihl:end],
        )
    if len(ip) < 40:
        return None
    nxt = ip[6]
    plen = (ip[4] << 8) | ip[5]
    pos = 40
    end = min(len(ip), 40 + plen) if plen else len(ip)
    while nxt in (0, 43, 60, 51, 44):
        if pos + 8 > end:
            return None
        if nxt == 44:  # fragment
            if ((ip[pos + 2] << 8) | ip[pos + 3]) & 0xFFF8:
                return None
            hlen = 8
        elif nxt == 51:
            hlen = (ip[pos + 1] + 2) * 4
        else:
            hlen = (ip[pos + 1] + 1) * 8
        nxt = ip[pos]
        pos += hlen
    if nxt != 17:
        return None
    return (
        str(ipaddress.IPv6Address(ip[8:24])),
        str(ipaddress.IPv6Address(ip[24:40])),
        ip[pos:end],
    )


def iter_udp(data: bytes) -> Iterator[UdpDatagram]:
    """Every UDP datagram of a capture image, in file order."""
    for ts, linktype, frame in iter_frames(data):
        net = _network(linktype, frame)
        if net is None:
            continue
        found = _udp(*net)
        if found is None:
            continue
        src, dst, seg = found
        if len(seg) < 8:
            continue
        sport, dport, ulen = struct.unpack_from("!HHH", seg, 0)
        end = min(len(seg), ulen) if ulen >= 8 else len(seg)
        yield UdpDatagram(ts, src, dst, sport, dport, bytes(seg[8:end]))


def read_udp(path: str | Path | BinaryIO) -> list[UdpDatagram]:
    """All UDP datagrams of a capture file."""
    if isinstance(path, str | Path):
        data = Path(path).read_bytes()
    else:
        data = path.read()
    return list(iter_udp(data))


_LINKTYPE_RAW = 101
_MAX_UDP_PAYLOAD = 65535 - 20 - 8


def _ipv4_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_udp_pcap(datagrams: Iterable[UdpDatagram]) -> bytes:
    """A classic pcap image of IPv4 ``datagrams`` (see the module docstring).

    Payloads longer than an IPv4 datagram can carry are cut to fit; a non-IPv4 address
    raises :class:`ValueError`.
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_RAW)]
    for d in datagrams:
        src = ipaddress.IPv4Address(d.src).packed
        dst = ipaddress.IPv4Address(d.dst).packed
        payload = d.payload[:_MAX_UDP_PAYLOAD]
        udp = struct.pack("!HHHH", d.sport, d.dport, 8 + len(payload), 0) + payload
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst
        )
        header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
        usec_total = int(round(d.timestamp * 1e6))
        sec, usec = divmod(max(usec_total, 0), 1_000_000)
        size = len(header) + len(udp)
        out.append(struct.pack("<IIII", sec, usec, size, size) + header + udp)
    return b"".join(out)
