import struct
from pathlib import Path

import pytest

from siprec_recorder.rtp.pcapio import (
    PcapError,
    UdpDatagram,
    iter_frames,
    iter_udp,
    read_udp,
    write_udp_pcap,
)

V = Path(__file__).parents[1] / "vectors" / "rtp"
PCAPS = Path(__file__).parents[2] / "pcaps"  # captures kept once, with their provenance


def test_classic_pcap() -> None:
    d = read_udp(PCAPS / "gteissier_marseillaise-srtp.pcap")
    assert len(d) == 11888
    assert (d[0].src, d[0].dst, d[0].sport, d[0].dport) == ("10.1.1.1", "10.2.2.2", 10000, 10000)
    assert d[1].timestamp >= d[0].timestamp > 1e9


def test_pcapng() -> None:
    d = read_udp(V / "sipnab_b2bua-asterisk.pcapng")
    rtp = [x for x in d if (x.src, x.sport, x.dport) == ("172.16.98.145", 8000, 8000)]
    assert len(rtp) == 355


def _ipv6_udp_frame(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload
    addrs = bytes(15) + b"\x01" + bytes(15) + b"\x02"
    ip6 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + addrs
    return ip6 + udp


def _classic(linktype: int, frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1700000000 + i, 500000, len(f), len(f)) + f
    return out


def test_raw_ipv6_and_linux_sll() -> None:
    frame = _ipv6_udp_frame(b"hello")
    (d,) = iter_udp(_classic(101, [frame]))
    assert (d.src, d.dst, d.sport, d.dport, d.payload) == ("::1", "::2", 4000, 5000, b"hello")
    assert d.timestamp == pytest.approx(1700000000.5)
    sll = bytes(14) + b"\x86\xdd" + frame
    (d2,) = iter_udp(_classic(113, [sll]))
    assert d2.payload == b"hello"
    eth_vlan = bytes(12) + b"\x81\x00\x00\x05\x86\xdd" + frame
    (d3,) = iter_udp(_classic(1, [eth_vlan]))
    assert d3.payload == b"hello"


def test_truncated_and_garbage() -> None:
    data = _classic(101, [_ipv6_udp_frame(b"x" * 10)] * 3)
    assert len(list(iter_udp(data[:-5]))) == 2
    with pytest.raises(PcapError):
        list(iter_udp(b"not a capture"))


def test_write_udp_pcap_round_trip() -> None:
    sent = [
        UdpDatagram(1700000000.25, "192.0.2.1", "192.0.2.2", 0, 40000, b"\x80\x61" + bytes(30)),
        UdpDatagram(1700000000.000001, "10.0.0.1", "10.0.0.2", 5004, 5006, b""),
        UdpDatagram(1700000001.5, "192.0.2.1", "192.0.2.2", 0, 40000, bytes(range(256)) * 4),
    ]
    image = write_udp_pcap(sent)
    assert image[:4] == b"\xd4\xc3\xb2\xa1"  # classic pcap, microseconds, little-endian
    got = list(iter_udp(image))
    assert [(d.src, d.dst, d.sport, d.dport, d.payload) for d in got] == [
        (d.src, d.dst, d.sport, d.dport, d.payload) for d in sent
    ]
    assert [round(d.timestamp, 6) for d in got] == [round(d.timestamp, 6) for d in sent]
    # Each IPv4 header sums to 0xFFFF with its checksum (RFC 791, RFC 1071).
    for _ts, linktype, frame in iter_frames(image):
        assert linktype == 101
        words = struct.unpack("!10H", frame[:20])
        total = sum(words)
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        assert total == 0xFFFF
    assert write_udp_pcap([]) == image[:24]


def test_write_udp_pcap_is_ipv4_only() -> None:
    with pytest.raises(ValueError):
        write_udp_pcap([UdpDatagram(0.0, "::1", "::1", 1, 2, b"x")])
