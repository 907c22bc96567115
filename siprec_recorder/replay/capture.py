"""Read UDP (and TCP payloads) out of pcap / pcapng captures, without third-party code.

Theory of operation
-------------------
A capture file is a sequence of link-layer frames with timestamps.  We decode just enough
to get transport payloads:

* file formats: classic pcap (magic ``a1b2c3d4`` microseconds / ``a1b23c4d`` nanoseconds,
  either byte order) and pcapng (Section Header, Interface Description with ``if_tsresol``,
  Enhanced and Simple Packet blocks; several sections and interfaces);
* link types: Ethernet (1, with 802.1Q/QinQ tags), BSD loopback (0), raw IP (12, 14, 101),
  Linux cooked SLL (113) and SLL2 (276), IPv4 (228), IPv6 (229);
* IPv4 with fragment reassembly (fragments collected by (src, dst, id, protocol) and joined
  once the last one arrives and the pieces are contiguous), IPv6 with its extension
  headers skipped (hop-by-hop, routing, destination options; fragments reassembled like
  IPv4's);
* UDP datagrams (everything RTP needs) and TCP segment payloads (enough to find SIP sent
  over TCP; no stream reassembly).

Malformed frames are skipped, never fatal: a capture is evidence, not a protocol peer.
A truncated file ends the read at the last whole record.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Capture", "CaptureError", "Datagram", "read_capture"]

Endpoint = tuple[str, int]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_ALIASES = {12, 14, LINKTYPE_RAW}

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = 0x0A0D0D0A
_MAX_FRAGMENT_GROUPS = 1024


class CaptureError(Exception):
    """The file is not a capture we can read (unknown format)."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """One transport payload: ``proto`` is ``'udp'`` or ``'tcp'``; ``time`` in seconds."""

    time: float
    proto: str
    src: Endpoint
    dst: Endpoint
    payload: bytes


@dataclass(slots=True)
class Capture:
    """What a capture file holds, in file order."""

    path: Path
    file_format: str  # 'pcap' | 'pcapng'
    linktypes: set[int] = field(default_factory=set)
    frames: int = 0
    datagrams: list[Datagram] = field(default_factory=list)
    skipped_frames: int = 0

    @property
    def udp(self) -> list[Datagram]:
        return [d for d in self.datagrams if d.proto == "udp"]

    @property
    def tcp(self) -> list[Datagram]:
        return [d for d in self.datagrams if d.proto == "tcp"]


def read_capture(path: str | Path) -> Capture:
    """Read a pcap or pcapng file (see the module docstring)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) >= 4 and data[:4] in _PCAP_MAGICS:
        capture = Capture(path=path, file_format="pcap")
        frames = _pcap_frames(data)
    elif len(data) >= 12 and struct.unpack("<I", data[:4])[0] == _PCAPNG_SHB:
        capture = Capture(path=path, file_format="pcapng")
        frames = _pcapng_frames(data)
    else:
        raise CaptureError(f"{path}: not a pcap or pcapng file")
    decoder = _Decoder()
    for time, linktype, frame in frames:
        capture.frames += 1
        capture.linktypes.add(linktype)
        datagram = decoder.frame(time, linktype, frame)
        if datagram is None:
            if not decoder.last_was_fragment:
                capture.skipped_frames += 1
            continue
        capture.datagrams.append(datagram)
    return capture


# -- file formats ---------------------------------------------------------------------


def _pcap_frames(data: bytes) -> list[tuple[float, int, bytes]]:
    endian, unit = _PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        return []
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    out: list[tuple[float, int, bytes]] = []
    pos = 24
    record = struct.Struct(endian + "IIII")
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = record.unpack_from(data, pos)
        pos += 16
        if pos + incl > len(data):
            break  # truncated last record
        out.append((sec + frac * unit, linktype, data[pos : pos + incl]))
        pos += incl
    return out


def _pcapng_frames(data: bytes) -> list[tuple[float, int, bytes]]:
    out: list[tuple[float, int, bytes]] = []
    pos = 0
    endian = "<"
    interfaces: list[tuple[int, float, int]] = []  # (linktype, seconds per unit, snaplen)
    while pos + 12 <= len(data):
        block_type_le = struct.unpack_from("<I", data, pos)[0]
        if block_type_le == _PCAPNG_SHB:
            magic = data[pos + 8 : pos + 12]
            endian = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        block_type, block_len = struct.unpack_from(endian + "II", data, pos)
        if block_len < 12 or pos + block_len > len(data):
            break
        body = data[pos + 8 : pos + block_len - 4]
        if block_type == 1 and len(body) >= 8:  # Interface Description Block
            linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body, 0)
            interfaces.append((linktype, _if_tsresol(body[8:], endian), snaplen))
        elif block_type == 6 and len(body) >= 20:  # Enhanced Packet Block
            iface, ts_high, ts_low, captured, _orig = struct.unpack_from(endian + "IIIII", body, 0)
            if iface < len(interfaces):
                linktype, unit, _snap = interfaces[iface]
                ts = ((ts_high << 32) | ts_low) * unit
                out.append((ts, linktype, body[20 : 20 + captured]))
        elif block_type == 3 and len(body) >= 4 and interfaces:  # Simple Packet Block
            (orig_len,) = struct.unpack_from(endian + "I", body, 0)
            linktype, _unit, snaplen = interfaces[0]
            length = min(orig_len, snaplen) if snaplen else orig_len
            out.append((0.0, linktype, body[4 : 4 + length]))
        elif block_type == 2 and len(body) >= 20:  # obsolete Packet Block
            iface, _drops, ts_high, ts_low, captured = struct.unpack_from(endian + "HHIII", body, 0)
            if iface < len(interfaces):
                linktype, unit, _snap = interfaces[iface]
                ts = ((ts_high << 32) | ts_low) * unit
                out.append((ts, linktype, body[20 : 20 + captured]))
        pos += block_len
    return out


def _if_tsresol(options: bytes, endian: str) -> float:
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, pos)
        if code == 0:
            break
        value = options[pos + 4 : pos + 4 + length]
        if code == 9 and length >= 1:  # if_tsresol
            resol = value[0]
            return 2.0 ** -(resol & 0x7F) if resol & 0x80 else 10.0**-resol
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


# -- link, network, transport -----------------------------------------------------------


class _Decoder:
    def __init__(self) -> None:
        self._fragments: dict[tuple[object, ...], list[tuple[int, bytes, bool]]] = {}
        self.last_was_fragment = False

    def frame(self, time: float, linktype: int, frame: bytes) -> Datagram | None:
        self.last_was_fragment = False
        try:
            network = _link_payload(linktype, frame)
            if network is None:
                return None
            ethertype, packet = network
            if ethertype == 0x0800:
                return self._ipv4(time, packet)
            if ethertype == 0x86DD:
                return self._ipv6(time, packet)
        except (struct.error, IndexError, ValueError):
            return None
        return None

    def _ipv4(self, time: float, packet: bytes) -> Datagram | None:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return None
        ihl = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        ident, flags_frag = struct.unpack_from("!HH", packet, 4)
        proto = packet[9]
        src = str(ipaddress.IPv4Address(packet[12:16]))
        dst = str(ipaddress.IPv4Address(packet[16:20]))
        end = total if ihl <= total <= len(packet) else len(packet)
        payload = packet[ihl:end]
        more = bool(flags_frag & 0x2000)
        offset = (flags_frag & 0x1FFF) * 8
        if more or offset:
            joined = self._reassemble((4, src, dst, ident, proto), offset, payload, more)
            if joined is None:
                return None
            payload = joined
        return _transport(time, proto, src, dst, payload)

    def _ipv6(self, time: float, packet: bytes) -> Datagram | None:
        if len(packet) < 40 or packet[0] >> 4 != 6:
            return None
        payload_len = struct.unpack_from("!H", packet, 4)[0]
        next_header = packet[6]
        src = str(ipaddress.IPv6Address(packet[8:24]))
        dst = str(ipaddress.IPv6Address(packet[24:40]))
        payload = packet[40 : 40 + payload_len] if payload_len else packet[40:]
        fragment: tuple[int, int, bool] | None = None
        for _ in range(8):
            if next_header in (0, 43, 60):  # hop-by-hop, routing, destination options
                if len(payload) < 8:
                    return None
                length = (payload[1] + 1) * 8
                next_header, payload = payload[0], payload[length:]
            elif next_header == 44:  # fragment
                if len(payload) < 8:
                    return None
                frag_field, ident = struct.unpack_from("!HI", payload, 2)
                fragment = (ident, frag_field & 0xFFF8, bool(frag_field & 1))
                next_header, payload = payload[0], payload[8:]
            else:
                break
        if fragment is not None:
            ident, offset, more = fragment
            if more or offset:
                joined = self._reassemble((6, src, dst, ident), offset, payload, more)
                if joined is None:
                    return None
                payload = joined
        return _transport(time, next_header, src, dst, payload)

    def _reassemble(
        self, key: tuple[object, ...], offset: int, data: bytes, more: bool
    ) -> bytes | None:
        self.last_was_fragment = True
        if key not in self._fragments and len(self._fragments) >= _MAX_FRAGMENT_GROUPS:
            self._fragments.pop(next(iter(self._fragments)))
        pieces = self._fragments.setdefault(key, [])
        pieces.append((offset, data, more))
        if not any(not m for _o, _d, m in pieces):
            return None
        pieces.sort(key=lambda piece: piece[0])
        joined = bytearray()
        for piece_offset, piece_data, _more in pieces:
            if piece_offset > len(joined):
                return None  # a hole: wait for more
            joined[piece_offset : piece_offset + len(piece_data)] = piece_data
        if pieces[-1][2]:
            return None
        del self._fragments[key]
        self.last_was_fragment = False
        return bytes(joined)


def _link_payload(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        pos = 14
        while ethertype in (0x8100, 0x88A8, 0x9100) and len(frame) >= pos + 4:
            ethertype = struct.unpack_from("!H", frame, pos + 2)[0]
            pos += 4
        return ethertype, frame[pos:]
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            return None
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if linktype == LINKTYPE_NULL:
        if len(frame) < 4:
            return None
        family = struct.unpack_from("<I", frame, 0)[0]
        if family > 0xFFFF:
            family = struct.unpack_from(">I", frame, 0)[0]
        return (0x0800 if family == 2 else 0x86DD), frame[4:]
    if linktype in _RAW_ALIASES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not frame:
            return None
        return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), frame
    return None


def _transport(time: float, proto: int, src: str, dst: str, payload: bytes) -> Datagram | None:
    if proto == 17 and len(payload) >= 8:
        sport, dport, length = struct.unpack_from("!HHH", payload, 0)
        end = length if 8 <= length <= len(payload) else len(payload)
        return Datagram(time, "udp", (src, sport), (dst, dport), payload[8:end])
    if proto == 6 and len(payload) >= 20:
        sport, dport = struct.unpack_from("!HH", payload, 0)
        offset = (payload[12] >> 4) * 4
        data = payload[offset:]
        if not data:
            return None
        return Datagram(time, "tcp", (src, sport), (dst, dport), data)
    return None
